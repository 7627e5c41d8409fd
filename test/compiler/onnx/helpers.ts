import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import type { ModelProto } from 'onnx-buf';
import { GraphBuilder, attr, float32ToFloat16 } from '../../../compiler/onnx/index.js';
import { ROOT } from '../../helpers/models.js';

/** The second openWakeWord head, a different classifier of the same architecture as REAL_MODELS.wakeWord. */
export const NAMASTE_MODEL = join(ROOT, 'node_modules', 'openwakeword-js', 'models', 'namaste_deepa.onnx');

/** mulberry32: a fixed-seed PRNG, so every run feeds the same "random" data. Returns floats in [0, 1). */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function randomFloats(count: number, seed: number, scale = 1): Float32Array {
  const random = prng(seed);
  return Float32Array.from({ length: count }, () => (random() * 2 - 1) * scale);
}

export type Feeds = Record<string, ort.Tensor>;

/** Runs a model (path or bytes) once under the native backend and returns its outputs' raw data by name. */
export async function runOrt(model: string | Uint8Array, feeds: Feeds): Promise<Record<string, ort.Tensor['data']>> {
  const session =
    typeof model === 'string'
      ? await ort.InferenceSession.create(model, { logSeverityLevel: 3 })
      : await ort.InferenceSession.create(model, { logSeverityLevel: 3 });
  try {
    const results = await session.run(feeds);
    return Object.fromEntries(Object.entries(results).map(([name, tensor]) => [name, tensor.data]));
  } finally {
    await session.release();
  }
}

/** Bytes of a typed array, for bit-for-bit comparisons (NaN payloads and signed zeros included). */
export function bitsOf(data: ort.Tensor['data']): Buffer {
  if (Array.isArray(data)) return Buffer.from(JSON.stringify(data));
  return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}

/** Fixed inputs for each real model: deterministic signals of the declared shapes. */
export function sileroV5Feeds(): Feeds {
  return {
    input: new ort.Tensor('float32', randomFloats(512, 1, 0.5), [1, 512]),
    state: new ort.Tensor('float32', randomFloats(256, 2, 0.1), [2, 1, 128]),
    sr: new ort.Tensor('int64', BigInt64Array.of(16000n), []),
  };
}

export function sileroLegacyFeeds(): Feeds {
  return {
    input: new ort.Tensor('float32', randomFloats(512, 3, 0.5), [1, 512]),
    sr: new ort.Tensor('int64', BigInt64Array.of(16000n), []),
    h: new ort.Tensor('float32', randomFloats(128, 4, 0.1), [2, 1, 64]),
    c: new ort.Tensor('float32', randomFloats(128, 5, 0.1), [2, 1, 64]),
  };
}

export function wakeWordFeeds(frames: number): Feeds {
  return { 'onnx::Flatten_0': new ort.Tensor('float32', randomFloats(frames * 96, 6), [1, frames, 96]) };
}

/**
 * A small generated MLP whose tensors straddle the external-data threshold: w1 (256 KiB), b1 (exactly 1024 bytes),
 * w2 (8 KiB), a float16 bias, a 2 KiB Constant node and a 16-byte initializer that always stays embedded.
 */
export function mlpModel(): { model: ModelProto; feeds: () => Feeds } {
  const g = new GraphBuilder('mlp');
  const x = g.input('x', 'float32', ['batch', 256]);
  const w1 = g.initializer('w1', randomFloats(256 * 256, 10, 0.1), [256, 256]);
  const b1 = g.initializer('b1', randomFloats(256, 11), [256]);
  const w2 = g.initializer('w2', randomFloats(256 * 8, 12, 0.1), [256, 8]);
  const half = g.initializer('half_bias', float32ToFloat16(randomFloats(8, 13)), [8], 'float16');
  const small = g.initializer('small', randomFloats(4, 14), [4]);
  const scale = g.constant(randomFloats(512, 15), [512]);
  const hidden = g.node('Relu', [g.node('Add', [g.node('MatMul', [x, w1]), b1])]);
  const logits = g.node('Add', [g.node('MatMul', [hidden, w2]), g.node('Cast', [half], { to: attr.int(1) })]);
  g.output(logits, 'float32', ['batch', 8]);
  g.output(g.node('Mul', [scale, g.node('ReduceSum', [small], { keepdims: 0 })]), 'float32', [512]);
  return {
    model: g.build({ opsets: { '': 17 } }),
    feeds: () => ({ x: new ort.Tensor('float32', randomFloats(2 * 256, 16), [2, 256]) }),
  };
}
