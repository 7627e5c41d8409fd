import { OutpostError } from '../errors.js';
import { allocateData, type DType, type TensorData } from './dtype.js';
import { bfloat16ToFloat32, float16ToFloat32 } from './float16.js';

/** What `Model.infer()` accepts per input: ONNX Runtime tensors fit, and so does `{ data, dims }`. */
export interface TensorLike {
  readonly data: TensorData;
  readonly dims: readonly number[];
  /** Checked against the model's dtype when given; otherwise implied by the data's array type. */
  readonly type?: DType;
}

export function elementCount(dims: readonly number[]): number {
  let n = 1;
  for (const d of dims) n *= d;
  return n;
}

/** A zero-filled array of the right type for `dtype` ("" for strings). */
export function zeros(dtype: DType, count: number): TensorData {
  return allocateData(dtype, count);
}

/** Mulberry32: a tiny seeded PRNG, so synthetic inputs and sample weights are the same on every run. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Synthetic data for benchmarks and warm-up: floats uniform in [-1, 1), integers small and non-negative (they are
 * often indices or sizes), booleans false.
 */
export function syntheticData(dtype: DType, count: number, seed = 1): TensorData {
  const data = zeros(dtype, count);
  const random = seededRandom(seed);
  if (data instanceof Float32Array || data instanceof Float64Array) {
    for (let i = 0; i < count; i++) data[i] = random() * 2 - 1;
  } else if (dtype === 'float16') {
    // Raw IEEE half bits of values in [-1, 1): exponent below 15, random sign and mantissa.
    const half = data as Uint16Array;
    for (let i = 0; i < count; i++)
      half[i] = (Math.floor(random() * 2) << 15) | (Math.floor(random() * 15) << 10) | Math.floor(random() * 1024);
  }
  return data;
}

/**
 * Elementwise |a - e| <= atol + rtol * |e| (numpy.allclose); NaN equals NaN. Returns the worst offender. float16 and
 * bfloat16 data (Uint16Array bit patterns) is compared as the numbers it encodes when `dtype` says so.
 */
export function allClose(
  actual: TensorData,
  expected: TensorData,
  atol: number,
  rtol: number,
  dtype?: DType,
): { ok: boolean; index: number; actual: number; expected: number; maxAbsErr: number } {
  if (
    (dtype === 'float16' || dtype === 'bfloat16') &&
    actual instanceof Uint16Array &&
    expected instanceof Uint16Array
  ) {
    const widen = dtype === 'float16' ? float16ToFloat32 : bfloat16ToFloat32;
    return allClose(widen(actual), widen(expected), atol, rtol);
  }
  if (actual.length !== expected.length) {
    throw new OutpostError('INVALID_ARGUMENT', `cannot compare ${actual.length} values with ${expected.length}`);
  }
  let worst = { ok: true, index: -1, actual: 0, expected: 0, maxAbsErr: 0 };
  let worstExcess = 0;
  for (let i = 0; i < actual.length; i++) {
    const a = Number(actual[i]);
    const e = Number(expected[i]);
    if (Number.isNaN(a) && Number.isNaN(e)) continue;
    const err = Math.abs(a - e);
    const excess = Number.isNaN(err) ? Infinity : err - (atol + rtol * Math.abs(e));
    if (err > worst.maxAbsErr || Number.isNaN(err)) worst.maxAbsErr = Number.isNaN(err) ? Infinity : err;
    if (excess > worstExcess) {
      worstExcess = excess;
      worst = { ok: false, index: i, actual: a, expected: e, maxAbsErr: worst.maxAbsErr };
    }
  }
  return worst;
}
