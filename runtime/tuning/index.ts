/** Measuring and tuning on this machine: `outpost bench` (the harness), `outpost tune` and the tune.json it writes. */
export {
  latencyStats,
  measure,
  percentile,
  type LatencyStats,
  type Measurement,
  type MeasureOptions,
} from './stats.js';
export { benchmark, type BenchOptions, type BenchReport, type BenchResult } from './harness.js';
export {
  benchmarkPipeline,
  type LatencyRow,
  type PipelineBenchOptions,
  type PipelineBenchReport,
} from './pipeline-bench.js';
export { requireBest, tune, type TuneOptions, type TuneReport, type TuneRow } from './tune.js';
export { readTuneChoices, tuneChoiceSchema, tunedLoadOptions, writeTuneChoice, type TuneChoiceFile } from './choice.js';
