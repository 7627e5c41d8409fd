import { float16ToFloat32, float32ToFloat16 } from '../onnx/index.js';

/**
 * float32 weights → float16 bits, keeping two facts round-to-nearest alone would break: a nonzero weight stays
 * nonzero (a LayerNorm epsilon of 1e-12 flushed to 0 divides by zero) and a finite one stays finite (Inf poisons every
 * sum it enters). onnxconverter-common clamps for the same reason, to [1e-7, 1e4] by default; these bounds are fp16's
 * own (smallest subnormal 2^-24, largest finite 65504), so no representable weight is moved.
 */
export interface HalfClamps {
  /** Nonzero values that would round to ±0, kept as ±2^-24. */
  toSmallest: number;
  /** Finite values that would round to ±Inf, kept as ±65504. */
  toLargest: number;
}

const SIGN = 0x8000;
const SMALLEST_SUBNORMAL = 0x0001; // 2^-24
const LARGEST_FINITE = 0x7bff; // 65504
const INFINITY = 0x7c00;

export function halfBits(src: Float32Array, clamps?: HalfClamps): Uint16Array {
  const bits = float32ToFloat16(src);
  for (let i = 0; i < src.length; i++) {
    const x = src[i] as number;
    const h = bits[i] as number;
    const magnitude = h & 0x7fff;
    if (magnitude === 0 && x !== 0 && !Number.isNaN(x)) {
      bits[i] = (h & SIGN) | SMALLEST_SUBNORMAL;
      if (clamps !== undefined) clamps.toSmallest += 1;
    } else if (magnitude === INFINITY && Number.isFinite(x)) {
      bits[i] = (h & SIGN) | LARGEST_FINITE;
      if (clamps !== undefined) clamps.toLargest += 1;
    }
  }
  return bits;
}

/** The float32 values the fp16 model will hold for these weights (for simulating fp16 on a float32 graph). */
export function roundThroughHalf(src: Float32Array, clamps?: HalfClamps): Float32Array {
  return float16ToFloat32(halfBits(src, clamps));
}
