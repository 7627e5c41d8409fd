/** The device agent (`outpost agent`, `outpost install-service`): see README.md in this folder. */
export { Agent } from './agent.js';
export { parseAgentConfig, readAgentConfig, type AgentConfigInput } from './config.js';
export { DeploymentStore } from './storage/deployment-records.js';
export { deploymentSummary, readStatus, type AgentStatus } from './storage/status.js';
export { ModelStore } from './storage/model-store.js';
export {
  DEVICE_GROUPS,
  SERVICE_DEFAULTS,
  agentCommand,
  initialConfig,
  renderUnit,
  thingNameOf,
  validateSpec,
  type ServiceSpec,
} from './service-unit.js';
export {
  DEFAULT_PREFIX,
  DEFAULT_SEED,
  DEFAULT_TARGETS,
  SIMULATOR_DEFAULTS,
  Simulator,
  readSharedTls,
  type SimulationSummary,
  type TargetShare,
} from './simulator/index.js';
