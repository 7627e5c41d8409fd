/** Model Monitor on the device: baseline statistics (compile time) and drift against them (serving time). */
export {
  BASELINE_FILE,
  baselineSchema,
  computeBaseline,
  type Baseline,
  type BaselineOptions,
  type FeatureBaseline,
  type SampleTensor,
} from './baseline.js';
export { featureLayout, MAX_ELEMENT_FEATURES, VALUES_PER_FEATURE, type FeatureKind } from './features.js';
export { readBaseline } from './load.js';
export {
  DEFAULT_MONITOR,
  DriftMonitor,
  type DriftEvent,
  type DriftReport,
  type DriftScore,
  type DriftStat,
  type MonitorOptions,
} from './monitor.js';
export { kolmogorovSmirnov, populationStabilityIndex, summarize, type FeatureStatistics } from './statistics.js';
