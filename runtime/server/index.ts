/**
 * The local inference server, for `outpost serve` and the agent: the HTTP edge (`http/`), what is served and how
 * (`serving/`, `scheduling/`), its metrics and data capture. See README.md in this folder.
 */
export {
  DEFAULT_MAX_BODY,
  DEFAULT_TIMEOUTS,
  InferenceServer,
  type ServerOptions,
  type ServerTimeouts,
} from './http/server.js';
export { BearerAuth, readTokenFile } from './http/auth.js';
export { CALLER_FAULTS, HttpError, errorResponse, type HttpErrorCode } from './http/status.js';
export { BINARY_CONTENT_TYPE, HEADER_LENGTH_HEADER, parseHeaderLength } from './protocol/binary.js';
export { prepareMessage, type MessageAnswer, type MessageRequest, type PreparedMessage } from './serving/message.js';
export { DEFAULT_MAX_RESPONSE } from './protocol/response.js';
export { StaticRepository, type ServiceRepository } from './serving/model-repository.js';
export { ModelService, type InferenceEvent, type ServiceObserver, type ServiceOptions } from './serving/service.js';
export {
  DEFAULT_LIMITS,
  directScheduler,
  type Scheduler,
  type SchedulerFactory,
  type SchedulerLimits,
} from './scheduling/direct.js';
export {
  DEFAULT_BATCHING,
  batchProblem,
  batchingScheduler,
  type BatchingOptions,
  type BatchObserver,
} from './scheduling/batching.js';
export { plannedScheduler, type BatchSettings, type SchedulingPlan } from './scheduling/plan.js';
export { ServerMetrics, type MetricsOptions, type WindowStats } from './metrics/prometheus.js';
export {
  CAPTURE_DEFAULTS,
  CaptureWriter,
  readCapture,
  readCaptureKey,
  readCaptureTensor,
  type CaptureOptions,
  type CaptureRecord,
  type CaptureStats,
  type CaptureTensor,
  type SealedFile,
} from './capture/writer.js';
export {
  MAX_SHADOW_IN_FLIGHT,
  PipelineService,
  StaticPipelines,
  type PipelineEndpoints,
  type PipelineServiceOptions,
} from './serving/pipeline-service.js';
export type { ShadowReport } from './serving/shadow.js';
export { PipelineMetrics } from './metrics/pipelines.js';
