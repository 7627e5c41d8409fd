/** The fleet control side (`outpost fleet`, `outpost deploy`, `outpost broker`): see README.md in this folder. */
export { serveFleet, defaultDbUrl, type RunningFleet, type ServeFleetOptions } from './service/serve.js';
export { FleetService, DEFAULT_SHARE_GROUP, type FleetServiceOptions } from './service/service.js';
export { DEFAULT_API_PORT } from './api/server.js';
export type { ArtifactView, DeploymentView, GroupView, RolloutView, ThingView, WaveView } from './api/views.js';
export { parseAbort, parseRate, parseRetry } from './rollouts/config.js';
export { parseStrategy } from './rollouts/strategy.js';
export { parseQuery, QUERY_KEYS } from './registry/query.js';
export { openStore, DB_URL_FORMS, type FleetStore } from './store/index.js';
export {
  deploy,
  DEFAULT_DEPLOY_TIMEOUT_MS,
  type DeployEvent,
  type DeployOptions,
  type DeployResult,
} from './deploy.js';
export type { FleetTls } from './mqtt.js';
export {
  DEFAULT_FLEET_IDENTITY,
  DEFAULT_MQTTS_PORT,
  DEFAULT_MQTT_PORT,
  startEmbeddedBroker,
  type EmbeddedBrokerTls,
} from './broker.js';
