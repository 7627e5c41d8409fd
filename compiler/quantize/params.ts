import { OutpostError } from '../../runtime/errors.js';

/**
 * Linear 8-bit quantisation parameters, computed exactly as ONNX Runtime's quantisation tool computes them
 * (onnxruntime/python/tools/quantization/quant_utils.py: `get_qmin_qmax_for_qType`, `compute_scale_zp`,
 * `quantize_nparray`), and values rounded as ONNX QuantizeLinear does ([ONNX Operators.md, QuantizeLinear]
 * "y = saturate(round(x / y_scale) + y_zero_point) … rounding to nearest ties to even"). Scales are float32, as the
 * tensors that carry them are; intermediate arithmetic follows numpy's float32/float64 promotion in the tool, so the
 * same inputs give the same bits.
 */
export type QuantType = 'uint8' | 'int8';

export interface QuantRange {
  readonly qmin: number;
  readonly qmax: number;
}

export interface RangeOptions {
  /** Symmetric about zero (weights of signed types; ORT's `WeightSymmetric` default for int8). */
  readonly symmetric?: boolean;
  /** 7-bit range, for U8S8 on x86 without VNNI (ORT guide, "When to use reduce-range"). */
  readonly reduceRange?: boolean;
}

/**
 * [quant_utils.py, ONNX_INT_TYPE_RANGE / _SYMMETRIC_RANGE / _REDUCED_RANGE] Reduced range wins over symmetric, as in
 * `get_qmin_qmax_for_qType`; int8's reduced range is [-64, 64] there (every product pair still fits VPMADDUBSW's
 * int16: 2 × 255 × 64 = 32 640).
 */
export const QUANT_RANGES = Object.freeze({
  uint8: Object.freeze({
    full: { qmin: 0, qmax: 255 },
    symmetric: { qmin: 0, qmax: 254 },
    reduced: { qmin: 0, qmax: 127 },
  }),
  int8: Object.freeze({
    full: { qmin: -128, qmax: 127 },
    symmetric: { qmin: -127, qmax: 127 },
    reduced: { qmin: -64, qmax: 64 },
  }),
} satisfies Record<QuantType, Record<'full' | 'symmetric' | 'reduced', QuantRange>>);

/** What the type itself can hold: QuantizeLinear saturates to this, whatever range the parameters were made for. */
export const TYPE_LIMITS: Readonly<Record<QuantType, QuantRange>> = Object.freeze({
  uint8: QUANT_RANGES.uint8.full,
  int8: QUANT_RANGES.int8.full,
});

export function quantRange(type: QuantType, options: RangeOptions = {}): QuantRange {
  if (options.reduceRange === true) return QUANT_RANGES[type].reduced;
  if (options.symmetric === true) return QUANT_RANGES[type].symmetric;
  return QUANT_RANGES[type].full;
}

export interface QuantParams {
  /** float32-representable. */
  readonly scale: number;
  /** An integer inside the quantisation range. */
  readonly zeroPoint: number;
}

/** float32's smallest normal number (numpy.finfo(float32).tiny). */
const FLOAT32_TINY = 2 ** -126;

/** Round half to even, as numpy.round and ONNX QuantizeLinear round. */
export function roundHalfEven(x: number): number {
  const r = Math.round(x); // rounds .5 up (towards +∞)
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * Scale and zero point for real values in [rmin, rmax] ([quant_utils.py, compute_scale_zp]): the range is first
 * widened to include 0 so that zero is exactly representable (zero padding must dequantise to 0: ORT guide,
 * "Quantization Overview"); symmetric ranges become [-absmax, absmax] with the zero point in the middle of the
 * integer range. A degenerate range (all values 0, or scale below float32's smallest normal) gives scale 1 and zero
 * point 0, ORT's choice, which dequantises every stored 0 back to exactly 0.
 */
export function computeQuantParams(rmin: number, rmax: number, range: QuantRange, symmetric = false): QuantParams {
  if (!Number.isFinite(rmin) || !Number.isFinite(rmax) || rmin > rmax) {
    throw new OutpostError('INVALID_ARGUMENT', `quantisation range [${rmin}, ${rmax}] must be finite with min ≤ max`, {
      details: { rmin, rmax },
    });
  }
  const { qmin, qmax } = range;
  let lo = Math.fround(Math.min(rmin, 0));
  let hi = Math.fround(Math.max(rmax, 0));
  if (symmetric) {
    const absmax = Math.max(Math.abs(lo), Math.abs(hi));
    lo = -absmax;
    hi = absmax;
  }
  // numpy: rmax - rmin in float32, then the division in float64.
  const scale = Math.fround(hi - lo) / (qmax - qmin);
  if (scale < FLOAT32_TINY) return { scale: 1, zeroPoint: 0 };
  const zeroPoint = symmetric ? roundHalfEven((qmin + qmax) / 2) : roundHalfEven(qmin - lo / scale);
  return { scale: Math.fround(scale), zeroPoint };
}

/** One value through QuantizeLinear: float32 division, round half to even, add the zero point, saturate. */
export function quantizeValue(x: number, params: QuantParams, type: QuantType): number {
  const { qmin, qmax } = TYPE_LIMITS[type];
  const q = roundHalfEven(Math.fround(Math.fround(x) / params.scale)) + params.zeroPoint;
  return q < qmin ? qmin : q > qmax ? qmax : q;
}

/** DequantizeLinear: (q - zero_point) * scale, in float32. */
export function dequantizeValue(q: number, params: QuantParams): number {
  return Math.fround((q - params.zeroPoint) * params.scale);
}

export type QuantArray = Uint8Array | Int8Array;

export function quantArray(type: QuantType, length: number): QuantArray {
  return type === 'uint8' ? new Uint8Array(length) : new Int8Array(length);
}

/** A whole tensor, per tensor. */
export function quantizeArray(values: Float32Array, params: QuantParams, type: QuantType): QuantArray {
  const out = quantArray(type, values.length);
  for (let i = 0; i < values.length; i++) out[i] = quantizeValue(values[i] as number, params, type);
  return out;
}

/** Min and max of a float32 array (0, 0 when empty, as quant_utils' `compute_data_quant_params`). */
export function minMax(values: Float32Array, start = 0, end = values.length, stride = 1): [number, number] {
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = start; i < end; i += stride) {
    const v = values[i] as number;
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  return lo > hi ? [0, 0] : [lo, hi];
}
