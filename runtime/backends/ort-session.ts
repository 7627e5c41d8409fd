import type * as ortCommon from 'onnxruntime-common';
import { OutpostError, messageOf } from '../errors.js';
import { isDType, type DType, type TensorData } from '../tensor/dtype.js';
import type { BackendName, BackendSession, IOInfo, SessionConfig, TensorValue } from './types.js';

/** The part of an ONNX Runtime JS package (onnxruntime-node or onnxruntime-web) the adapter uses. */
export interface OrtModule {
  readonly InferenceSession: typeof ortCommon.InferenceSession;
  readonly Tensor: typeof ortCommon.Tensor;
  readonly env: ortCommon.Env;
}

const LOG_SEVERITY = Object.freeze({ verbose: 0, info: 1, warning: 2, error: 3, fatal: 4 } as const);

/**
 * ONNX Runtime reports an unnamed dynamic dimension as "" (node) or 2^32-1 (web, an unsigned -1). Both become a
 * symbol named after the tensor and axis, so errors can name it and callers can bind it.
 */
function normaliseShape(name: string, shape: readonly (number | string)[]): (number | string)[] {
  return shape.map((dim, axis) => {
    if (typeof dim === 'string') return dim === '' ? `${name}[${axis}]` : dim;
    return dim < 0 || dim >= 0xffffffff ? `${name}[${axis}]` : dim;
  });
}

function ioInfo(metadata: readonly ortCommon.InferenceSession.ValueMetadata[]): IOInfo[] {
  return metadata.map((m) => {
    if (!m.isTensor) return { name: m.name, dtype: undefined, shape: [] };
    return { name: m.name, dtype: isDType(m.type) ? m.type : undefined, shape: normaliseShape(m.name, m.shape) };
  });
}

export function sessionOptions(
  config: SessionConfig,
  executionProviders: readonly string[],
): ortCommon.InferenceSession.SessionOptions {
  const options: ortCommon.InferenceSession.SessionOptions = {
    executionProviders,
    // Off by default: every failure reaches the caller as an OutpostError; ORT's own lines are only noise then.
    logSeverityLevel: LOG_SEVERITY[config.ortLogLevel ?? 'fatal'],
    graphOptimizationLevel: config.graphOptimizationLevel ?? 'all',
  };
  if (config.threads !== undefined && config.threads > 0) options.intraOpNumThreads = config.threads;
  if (config.optimizedModelFilePath !== undefined) {
    options.optimizedModelFilePath = config.optimizedModelFilePath;
    if (config.optimizedModelFilePath.endsWith('.ort')) options.extra = { session: { save_model_format: 'ORT' } };
  }
  return options;
}

/** Adapts one ONNX Runtime JS session to `BackendSession`; shared by the native and WASM backends. */
export class OrtSession implements BackendSession {
  readonly inputs: readonly IOInfo[];
  readonly outputs: readonly IOInfo[];

  constructor(
    readonly backend: BackendName,
    private readonly ort: OrtModule,
    private readonly session: ortCommon.InferenceSession,
  ) {
    this.inputs = ioInfo(session.inputMetadata);
    this.outputs = ioInfo(session.outputMetadata);
  }

  tensor(dtype: DType, data: TensorData, dims: readonly number[]): TensorValue {
    // The constructor's overloads are keyed by the literal dtype; the data/dtype pairing was checked by the caller.
    const Tensor = this.ort.Tensor as unknown as new (t: DType, d: TensorData, s: readonly number[]) => TensorValue;
    return new Tensor(dtype, data, dims);
  }

  run(feeds: Readonly<Record<string, TensorValue>>): Promise<Record<string, TensorValue>> {
    // Feeds were made by tensor() above, so they are this package's Tensor objects; outputs are too.
    return this.session.run(feeds as unknown as ortCommon.InferenceSession.FeedsType);
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}

export async function createOrtSession(
  backend: BackendName,
  ort: OrtModule,
  model: string | Uint8Array,
  options: ortCommon.InferenceSession.SessionOptions,
): Promise<OrtSession> {
  try {
    const session =
      typeof model === 'string'
        ? await ort.InferenceSession.create(model, options)
        : await ort.InferenceSession.create(model, options);
    return new OrtSession(backend, ort, session);
  } catch (error) {
    const what = typeof model === 'string' ? model : `${model.byteLength}-byte model`;
    throw new OutpostError('SESSION_CREATE_FAILED', `${backend} backend could not load ${what}: ${messageOf(error)}`, {
      cause: error,
      details: { backend, model: typeof model === 'string' ? model : undefined },
    });
  }
}
