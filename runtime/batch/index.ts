/**
 * Batch transform (`outpost batch`): every input of a set through a model (or, behind the same BatchRunner
 * contract, a pipeline), one JSON line each in an output file that is also the journal `--resume` reads.
 */
export { expandGlob, isGlob } from './glob.js';
export { INPUT_EXTENSIONS, listInputs, type BatchItem } from './sources.js';
export { decodeItem } from './decode.js';
export { Journal, JOURNAL_DEFAULTS, parseJournal, type JournalOptions, type JournalState } from './journal.js';
export {
  ModelRunner,
  RUNNER_DEFAULTS,
  type BatchResult,
  type BatchRunner,
  type JsonTensor,
  type ModelRunnerOptions,
} from './runner.js';
export { PipelineRunner, PIPELINE_RUNNER_DEFAULTS, type PipelineRunnerOptions } from './pipeline-runner.js';
export { transform, type BatchLine, type BatchSummary, type TransformOptions } from './transform.js';
