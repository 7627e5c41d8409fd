/** Pipelines of models and built-in transforms (docs/pipelines.md): plan, open, run. */
export { openPipeline, isPipelineArtifact, type OpenPipelineOptions } from './open.js';
export { Pipeline, type PipelineRun, type StepInfo } from './pipeline.js';
export { planPipeline, orderSteps, type ModelSignature, type Plan, type PlannedStep } from './plan.js';
