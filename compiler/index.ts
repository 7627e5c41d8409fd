/** The compiler (`outpost compile`, `outpost targets`): see README.md in this folder. `models/` uses `onnx/` alone. */
export { compile, type CompileOptions } from './compile.js';
export type { CompileReport, VariantReport } from './report.js';
export { DEFAULT_BUDGET, parseBudget, type AccuracyBudget } from './evaluate/budget.js';
export { RUN_BUDGET_DEFAULTS, defaultRunBudget, type RunBudget } from './evaluate/evaluator.js';
export {
  DEFAULT_PROFILES,
  TARGET_PROFILES,
  detectHost,
  type HostDetection,
  type QuantizationFormat,
  type TargetProfile,
} from './targets/index.js';
export {
  loadModel as loadOnnxModel,
  mainGraph,
  opHistogram,
  opsets,
  parameterCount,
  valueTypes,
} from './onnx/index.js';
export { buildPipeline, type BuildPipelineOptions, type PipelineBuildReport } from './pipeline/build.js';
