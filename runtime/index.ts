/** Outpost's runtime, for apps that run models in-process: `loadModel(path).infer(feeds)`. */
export { loadModel, type LoadOptions } from './model/load.js';
export { Model, type Feeds, type Outputs } from './model/model.js';
export { openPipeline, Pipeline, type OpenPipelineOptions, type PipelineRun } from './pipeline/index.js';
export { readTestVectors, type TestVectorCase } from './model/test-vectors.js';
export {
  backends,
  BackendRegistry,
  NativeBackend,
  WasmBackend,
  BACKEND_PRIORITY,
  type Backend,
  type BackendName,
  type BackendSession,
  type TensorValue,
} from './backends/index.js';
export { OutpostError, isOutpostError, ERROR_CODES, type ErrorCode } from './errors.js';
export { DTYPES, type DType, type TensorData } from './tensor/dtype.js';
export type { TensorLike } from './tensor/tensor.js';
export { decodeNpy, encodeNpy } from './tensor/npy.js';
export * as artifact from './artifact/index.js';
export { OUTPOST_VERSION } from './version.js';
