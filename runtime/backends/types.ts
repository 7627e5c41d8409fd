import type { BackendName } from '../artifact/manifest.js';
import type { DType, TensorData } from '../tensor/dtype.js';

export type { BackendName };

/** A tensor as the runtime hands it in and out: ONNX Runtime's own `Tensor` objects satisfy this shape. */
export interface TensorValue {
  readonly type: DType;
  readonly dims: readonly number[];
  readonly data: TensorData;
}

/** A model input or output as a session reports it; `shape` entries are sizes or symbol names. */
export interface IOInfo {
  readonly name: string;
  readonly dtype: DType | undefined;
  readonly shape: readonly (number | string)[];
}

export interface SessionConfig {
  /** Intra-op threads; 0 or undefined lets the backend choose (all cores for native). */
  readonly threads?: number;
  /** Execution providers in preference order, e.g. ["cuda", "cpu"]; the backend maps and filters them. */
  readonly executionProviders?: readonly string[];
  /** ONNX Runtime's online graph optimisation level. ORT-format variants are already optimised. */
  readonly graphOptimizationLevel?: 'disabled' | 'basic' | 'extended' | 'all';
  /** ONNX Runtime's own log verbosity: 'warning' with --verbose, otherwise 'error'. */
  readonly ortLogLevel?: 'verbose' | 'info' | 'warning' | 'error' | 'fatal';
  /** Write the optimised model here (ORT format when the path ends in .ort). Used by the compiler. */
  readonly optimizedModelFilePath?: string;
}

export interface BackendSession {
  readonly backend: BackendName;
  readonly inputs: readonly IOInfo[];
  readonly outputs: readonly IOInfo[];
  /** Wraps data into this backend's tensor type; the data is not copied. */
  tensor(dtype: DType, data: TensorData, dims: readonly number[]): TensorValue;
  /**
   * Runs the session. Rejects with the engine's own error: the hot path adds no promise layer of its own; callers
   * wrap failures (`Model.infer` makes them INFERENCE_FAILED).
   */
  run(feeds: Readonly<Record<string, TensorValue>>): Promise<Record<string, TensorValue>>;
  release(): Promise<void>;
}

/**
 * One inference engine. `init()` runs once, lazily, on first use (ONNX Runtime JS's backend-impl does the same):
 * a backend whose init throws is skipped by the registry and its reason is reported.
 */
export interface Backend {
  readonly name: BackendName;
  /** The engine's version, for producer fields and bench output. */
  readonly version: string | undefined;
  init(): Promise<void>;
  /** `model` is a file path (.onnx or .ort) or the model's bytes. */
  createSession(model: string | Uint8Array, config: SessionConfig): Promise<BackendSession>;
}
