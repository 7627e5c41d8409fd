/**
 * IEEE 754 binary16 (ONNX FLOAT16) and bfloat16 (ONNX BFLOAT16) conversions for whole arrays. ONNX stores both as
 * raw 16-bit patterns (onnx.proto, TensorProto.int32_data / raw_data), so the compiler's fp16 pass works on
 * `Uint16Array`s of bits. Narrowing rounds to nearest, ties to even, like numpy's `astype(float16)` and ONNX Runtime's
 * `MLFloat16`; NaN stays NaN (quiet, sign kept), overflow becomes ±Inf.
 *
 * Speed: one typed-array view per call and no allocation per element; float16 → float32 is a 64 Ki-entry table
 * lookup (256 KiB, built on first use), the other directions are a few integer operations on the float32 bit pattern.
 */

/** Host byte order: typed-array views are in host order, ONNX raw data is little-endian (onnx.proto, raw_data). */
export const HOST_IS_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

const scratchF32 = new Float32Array(1);
const scratchU32 = new Uint32Array(scratchF32.buffer);

/** float32 bit pattern → binary16 bit pattern, round-to-nearest-even. */
function halfFromFloatBits(x: number): number {
  const sign = (x >>> 16) & 0x8000;
  const abs = x & 0x7fffffff;
  if (abs >= 0x47800000) {
    // |x| ≥ 65536, Inf or NaN: NaN keeps its sign and becomes the canonical quiet NaN.
    return abs > 0x7f800000 ? sign | 0x7e00 : sign | 0x7c00;
  }
  if (abs >= 0x38800000) {
    // Normal half (|x| ≥ 2^-14): rebias the exponent (127 → 15) and round the 13 dropped mantissa bits to even.
    // Values in [65520, 65536) carry into the exponent and come out as Inf (0x7c00), as they should.
    return sign | ((abs - 0x38000000 + 0xfff + ((abs >>> 13) & 1)) >>> 13);
  }
  // Subnormal half or zero: the result counts units of 2^-24.
  const exponent = abs >>> 23;
  if (exponent < 102) return sign; // |x| < 2^-25: rounds to ±0 (2^-25 itself is a tie and goes to even, 0)
  const mantissa = (abs & 0x7fffff) | 0x800000;
  const shift = 126 - exponent; // 14..24
  let q = mantissa >>> shift;
  const rest = mantissa & ((1 << shift) - 1);
  const half = 1 << (shift - 1);
  if (rest > half || (rest === half && (q & 1) === 1)) q += 1;
  return sign | q;
}

/** binary16 bit pattern → float32 bit pattern (exact). */
function floatBitsFromHalf(h: number): number {
  const sign = (h & 0x8000) << 16;
  const exponent = (h >>> 10) & 0x1f;
  const mantissa = h & 0x3ff;
  if (exponent === 0x1f) return (sign | 0x7f800000 | (mantissa << 13)) >>> 0;
  if (exponent !== 0) return (sign | ((exponent + 112) << 23) | (mantissa << 13)) >>> 0;
  if (mantissa === 0) return sign >>> 0;
  // Subnormal half: normalise the mantissa into a float32 normal.
  let e = 113;
  let m = mantissa;
  while ((m & 0x400) === 0) {
    m <<= 1;
    e -= 1;
  }
  return (sign | (e << 23) | ((m & 0x3ff) << 13)) >>> 0;
}

/** float32 bit pattern → bfloat16 bit pattern, round-to-nearest-even. */
function bfloatFromFloatBits(x: number): number {
  // Adding 0x7fff (+1 when the kept half is odd) rounds to nearest even; the largest finite values carry into Inf,
  // as they should. A NaN could carry into Inf too, so it is truncated instead and forced quiet.
  return (x & 0x7fffffff) > 0x7f800000 ? (x >>> 16) | 0x40 : (x + 0x7fff + ((x >>> 16) & 1)) >>> 16;
}

let halfTable: Uint32Array | undefined;

function halfToFloatTable(): Uint32Array {
  if (halfTable === undefined) {
    halfTable = new Uint32Array(0x10000);
    for (let h = 0; h < 0x10000; h++) halfTable[h] = floatBitsFromHalf(h);
  }
  return halfTable;
}

function bitsOf(src: Float32Array): Uint32Array {
  return new Uint32Array(src.buffer, src.byteOffset, src.length);
}

function checkLength(src: { length: number }, dst: { length: number }, what: string): void {
  if (dst.length < src.length) {
    throw new RangeError(`${what}: destination holds ${dst.length} elements, source has ${src.length}`);
  }
}

/** float32 → float16 bits (round-to-nearest-even). Writes into `dst` when given (may be a fresh array). */
export function float32ToFloat16(src: Float32Array, dst: Uint16Array = new Uint16Array(src.length)): Uint16Array {
  checkLength(src, dst, 'float32ToFloat16');
  const bits = bitsOf(src);
  for (let i = 0; i < bits.length; i++) dst[i] = halfFromFloatBits(bits[i] as number);
  return dst;
}

/** float16 bits → float32 (exact: every half is a float). */
export function float16ToFloat32(src: Uint16Array, dst: Float32Array = new Float32Array(src.length)): Float32Array {
  checkLength(src, dst, 'float16ToFloat32');
  const table = halfToFloatTable();
  const out = bitsOf(dst);
  for (let i = 0; i < src.length; i++) out[i] = table[src[i] as number] as number;
  return dst;
}

/** float32 → bfloat16 bits: the top 16 bits of the float32, rounded to nearest even; NaN stays a quiet NaN. */
export function float32ToBfloat16(src: Float32Array, dst: Uint16Array = new Uint16Array(src.length)): Uint16Array {
  checkLength(src, dst, 'float32ToBfloat16');
  const bits = bitsOf(src);
  for (let i = 0; i < bits.length; i++) dst[i] = bfloatFromFloatBits(bits[i] as number);
  return dst;
}

/** bfloat16 bits → float32 (exact). */
export function bfloat16ToFloat32(src: Uint16Array, dst: Float32Array = new Float32Array(src.length)): Float32Array {
  checkLength(src, dst, 'bfloat16ToFloat32');
  const out = bitsOf(dst);
  for (let i = 0; i < src.length; i++) out[i] = (src[i] as number) << 16;
  return dst;
}

/** One number → float16 bits, for tests and attribute values; arrays should use `float32ToFloat16`. */
export function toFloat16Bits(value: number): number {
  scratchF32[0] = value;
  return halfFromFloatBits(scratchU32[0] as number);
}

/** float16 bits → number. */
export function fromFloat16Bits(bits: number): number {
  scratchU32[0] = halfToFloatTable()[bits & 0xffff] as number;
  return scratchF32[0] as number;
}

/** One number → bfloat16 bits. */
export function toBfloat16Bits(value: number): number {
  scratchF32[0] = value;
  return bfloatFromFloatBits(scratchU32[0] as number);
}

/** bfloat16 bits → number. */
export function fromBfloat16Bits(bits: number): number {
  scratchU32[0] = (bits & 0xffff) << 16;
  return scratchF32[0] as number;
}
