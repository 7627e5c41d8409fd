/** The fleet simulator's devices (`outpost fleet simulate`): see README.md in this folder. */
export { SimulatedDevice, type SharedDeviceSettings, type SimulatedDeviceOptions } from './device.js';
export { SimulatedInstall } from './install.js';
export type { SeenJob } from './job.js';
export {
  DEFAULT_PREFIX,
  DEFAULT_SEED,
  DEFAULT_TARGETS,
  countOf,
  planDevices,
  planOutcomes,
  type PlannedDevice,
  type PlannedOutcome,
  type SimulatedTarget,
  type SimulationPlanOptions,
  type TargetShare,
} from './plan.js';
export {
  SIMULATOR_DEFAULTS,
  Simulator,
  readSharedTls,
  type SimulatorOptions,
  type SimulatorProgress,
} from './simulator.js';
export type { JobSummary, SimulationSummary } from './summary.js';
