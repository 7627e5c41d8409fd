import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { GraphBuilder, encodeModel } from '../../../compiler/onnx/index.js';
import {
  QUANT_RANGES,
  computeQuantParams,
  dequantizeValue,
  quantRange,
  quantizeArray,
  quantizeValue,
  roundHalfEven,
  type QuantType,
} from '../../../compiler/quantize/params.js';
import { adjustForBias, quantizeBias, quantizeWeight, weightParams } from '../../../compiler/quantize/weights.js';
import { isOutpostError } from '../../../runtime/errors.js';
import { uniform } from './helpers.js';

const f32 = Math.fround;

describe('quantisation parameters (ORT quant_utils.compute_scale_zp)', () => {
  it('widens the range to include zero and rounds the zero point half to even', () => {
    // [-1, 1] on uint8: scale 2/255, zero point round(0 + 1 / (2/255)) = round(127.5) = 128 (even).
    expect(computeQuantParams(-1, 1, QUANT_RANGES.uint8.full)).toEqual({ scale: f32(2 / 255), zeroPoint: 128 });
    // All-positive [2, 6] becomes [0, 6]: zero point 0.
    expect(computeQuantParams(2, 6, QUANT_RANGES.uint8.full)).toEqual({ scale: f32(6 / 255), zeroPoint: 0 });
    // All-negative [-6, -2] becomes [-6, 0]: zero point 255.
    expect(computeQuantParams(-6, -2, QUANT_RANGES.uint8.full)).toEqual({ scale: f32(6 / 255), zeroPoint: 255 });
    // Asymmetric int8: [-1, 3] → scale 4/255, zp = round(-128 + 1/(4/255)) = round(-64.25) = -64.
    expect(computeQuantParams(-1, 3, QUANT_RANGES.int8.full)).toEqual({ scale: f32(4 / 255), zeroPoint: -64 });
  });

  it('symmetric int8 is max|x| / 127 with zero point 0; reduce range is 7 bits', () => {
    expect(quantRange('int8', { symmetric: true })).toEqual({ qmin: -127, qmax: 127 });
    expect(computeQuantParams(-0.5, 2.54, quantRange('int8', { symmetric: true }), true)).toEqual({
      scale: f32(f32(2 * f32(2.54)) / 254),
      zeroPoint: 0,
    });
    expect(quantRange('int8', { symmetric: true, reduceRange: true })).toEqual({ qmin: -64, qmax: 64 });
    expect(quantRange('uint8', { reduceRange: true })).toEqual({ qmin: 0, qmax: 127 });
    const reduced = computeQuantParams(-3, 1, quantRange('int8', { symmetric: true, reduceRange: true }), true);
    expect(reduced).toEqual({ scale: f32(6 / 128), zeroPoint: 0 });
  });

  it('gives scale 1 and zero point 0 for a degenerate range, as ORT does', () => {
    expect(computeQuantParams(0, 0, QUANT_RANGES.uint8.full)).toEqual({ scale: 1, zeroPoint: 0 });
    expect(computeQuantParams(0, 1e-40, QUANT_RANGES.int8.full)).toEqual({ scale: 1, zeroPoint: 0 });
    expect(computeQuantParams(-0, 0, QUANT_RANGES.int8.symmetric, true)).toEqual({ scale: 1, zeroPoint: 0 });
  });

  it('refuses non-finite and inverted ranges', () => {
    for (const [lo, hi] of [
      [NaN, 1],
      [0, Infinity],
      [2, 1],
    ] as const) {
      let caught: unknown;
      try {
        computeQuantParams(lo, hi, QUANT_RANGES.uint8.full);
      } catch (error) {
        caught = error;
      }
      expect(isOutpostError(caught, 'INVALID_ARGUMENT')).toBe(true);
    }
  });

  it('rounds half to even like QuantizeLinear and saturates', () => {
    expect([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 2.4999, -2.5001].map(roundHalfEven)).toEqual([0, 2, 2, -0, -2, -2, 2, -3]);
    const p = { scale: 0.5, zeroPoint: 10 };
    expect(quantizeValue(1.25, p, 'uint8')).toBe(12); // 2.5 → 2, + 10
    expect(quantizeValue(1.75, p, 'uint8')).toBe(14); // 3.5 → 4, + 10
    expect(quantizeValue(1000, p, 'uint8')).toBe(255);
    expect(quantizeValue(-1000, p, 'int8')).toBe(-128);
    expect(dequantizeValue(14, p)).toBe(2);
  });
});

/** QuantizeLinear → y and DequantizeLinear(y) → z, per tensor or along an axis, run by ONNX Runtime. */
async function ortQdq(
  x: Float32Array,
  dims: number[],
  scale: Float32Array,
  zeroPoint: Int8Array | Uint8Array,
  type: QuantType,
  axis?: number,
): Promise<{ q: ArrayLike<number>; dq: Float32Array }> {
  const g = new GraphBuilder('qdq');
  const input = g.input('x', 'float32', dims);
  const shape = axis === undefined ? [] : [scale.length];
  const s = g.initializer('scale', scale, shape);
  const z = g.initializer('zero_point', zeroPoint, shape, type);
  const attrs: Record<string, number> = axis === undefined ? {} : { axis };
  const q = g.node('QuantizeLinear', [input, s, z], attrs);
  g.output(q, type, dims);
  g.output(g.node('DequantizeLinear', [q, s, z], attrs), 'float32', dims);
  const real = await ort.InferenceSession.create(encodeModel(g.build({ opsets: { '': 13 } })), { logSeverityLevel: 3 });
  try {
    const out = await real.run({ x: new ort.Tensor('float32', x, dims) });
    const [qName, dqName] = real.outputNames as [string, string];
    return { q: out[qName]?.data as Int8Array | Uint8Array, dq: out[dqName]?.data as Float32Array };
  } finally {
    await real.release();
  }
}

describe('against ONNX Runtime QuantizeLinear / DequantizeLinear', () => {
  for (const type of ['uint8', 'int8'] as const) {
    it(`matches bit for bit per tensor (${type}), ties and saturation included`, async () => {
      const params = computeQuantParams(-1.3, 2.1, QUANT_RANGES[type].full);
      const ties = Float32Array.from({ length: 64 }, (_, i) => f32((i - 32 + 0.5) * params.scale));
      const x = Float32Array.from([...uniform(2000, 11, 3), ...ties, 1e6, -1e6, 0, -0]);
      const ours = quantizeArray(x, params, type);
      const zp = type === 'uint8' ? Uint8Array.of(params.zeroPoint) : Int8Array.of(params.zeroPoint);
      const ref = await ortQdq(x, [x.length], Float32Array.of(params.scale), zp, type);
      expect(Array.from(ours)).toEqual(Array.from(ref.q));
      expect(Array.from(ours, (q) => dequantizeValue(q, params))).toEqual(Array.from(ref.dq));
    });
  }

  it('matches per channel (axis 0 of a Conv weight, symmetric int8)', async () => {
    const dims = [8, 3, 3, 3];
    const w = uniform(8 * 27, 5, 0.7);
    for (let i = 0; i < 27; i++) w[i] = 0; // an all-zero channel: scale 1, zero point 0
    const q = quantizeWeight(w, dims, { type: 'int8', symmetric: true, reduceRange: false, axis: 0 });
    expect(q.scales[0]).toBe(1);
    const ref = await ortQdq(w, dims, q.scales, q.zeroPoints, 'int8', 0);
    expect(Array.from(q.data)).toEqual(Array.from(ref.q));
  });

  it('matches per column (axis 1 of a MatMul weight, reduce range)', async () => {
    const dims = [16, 5];
    const w = uniform(80, 6, 2);
    const q = quantizeWeight(w, dims, { type: 'int8', symmetric: true, reduceRange: true, axis: 1 });
    for (const v of q.data) expect(Math.abs(v)).toBeLessThanOrEqual(64);
    const ref = await ortQdq(w, dims, q.scales, q.zeroPoints, 'int8', 1);
    expect(Array.from(q.data)).toEqual(Array.from(ref.q));
  });
});

describe('weights and biases', () => {
  it('computes per-channel scales from each channel alone', () => {
    // [2, 3], axis 0: rows [-1, 0, 0.5] and [0, 2, 4].
    const p = weightParams(Float32Array.of(-1, 0, 0.5, 0, 2, 4), [2, 3], {
      type: 'int8',
      symmetric: true,
      reduceRange: false,
      axis: 0,
    });
    expect(Array.from(p.scales)).toEqual([f32(2 / 254), f32(8 / 254)]);
    expect(Array.from(p.zeroPoints)).toEqual([0, 0]);
  });

  it('quantises a bias as int32 with scale input_scale × weight_scale, ties to even', () => {
    const b = quantizeBias(Float32Array.of(1, -1.5, 0.25, 0.375), 0.5, Float32Array.of(0.5, 1, 0.25, 0.5));
    expect(Array.from(b.scales)).toEqual([0.25, 0.5, 0.125, 0.25]);
    expect(Array.from(b.data)).toEqual([4, -3, 2, 2]); // 0.375 / 0.25 = 1.5 → 2
    const shared = quantizeBias(Float32Array.of(1, 2), 0.25, Float32Array.of(0.5));
    expect(Array.from(shared.scales)).toEqual([0.125]);
    expect(Array.from(shared.data)).toEqual([8, 16]);
  });

  it('raises a weight scale whose bias would overflow int32, instead of clipping it', () => {
    const tiny = { scales: Float32Array.of(1e-12, 0.01), zeroPoints: Int8Array.of(0, 0), axis: 0 };
    const adjusted = adjustForBias(tiny, Float32Array.of(5, 5), 1e-3);
    expect(adjusted.scales[0]).toBeGreaterThan(1e-12);
    expect(adjusted.scales[1]).toBe(f32(0.01));
    const b = quantizeBias(Float32Array.of(5, 5), 1e-3, adjusted.scales);
    expect(b.clipped).toBe(0);
    for (const v of b.data) expect(Math.abs(v)).toBeLessThan(2 ** 31 - 1);
    expect(quantizeBias(Float32Array.of(5), 1e-3, Float32Array.of(1e-12)).clipped).toBe(1);
  });
});
