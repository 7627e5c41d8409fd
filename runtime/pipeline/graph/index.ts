/** Pipelines of models and built-in transforms (docs/pipelines.md): plan, open, run. */
export { openPipeline, isPipelineArtifact, type OpenPipelineOptions } from './open.js';
export { Pipeline, type PipelineRun, type StepInfo } from './pipeline.js';
export { planPipeline, orderSteps, type ModelSignature, type Plan, type PlannedStep } from './plan.js';
export {
  checkPipelineVectors,
  readPipelineVectors,
  vectorMismatch,
  vectorFile,
  encodeVectorTensor,
  DEFAULT_PIPELINE_TOLERANCE,
  MAX_PIPELINE_CASES,
  MAX_PIPELINE_CASE_BYTES,
  type PipelineVector,
} from './vectors.js';
