import { OutpostError } from '../../runtime/errors.js';
import { DTYPES, type DType } from '../../runtime/tensor/index.js';

/**
 * Sub-byte element types. ONNX packs them little-end first (onnx.proto, TensorProto.raw_data): 4-bit pairs as
 * `x0 | x1 << 4`, 2-bit quads as `x0 | x1 << 2 | x2 << 4 | x3 << 6`; an odd tail leaves the high bits zero.
 * Tensors of these types are exposed packed, as stored (and as ONNX Runtime's JS API holds int4/uint4); these helpers
 * convert to and from one element per byte.
 */
export const SUB_BYTE_DTYPES = Object.freeze(['int4', 'uint4', 'float4e2m1', 'int2', 'uint2'] as const);
export type SubByteDType = (typeof SUB_BYTE_DTYPES)[number];

export function isSubByte(dtype: DType): dtype is SubByteDType {
  return (SUB_BYTE_DTYPES as readonly string[]).includes(dtype);
}

/** Whether unpacked elements are two's-complement signed (int4: -8..7, int2: -2..1). float4e2m1 stays raw codes. */
function isSigned(dtype: SubByteDType): boolean {
  return dtype === 'int4' || dtype === 'int2';
}

/**
 * Packed bytes → one element per byte. Signed types come back sign-extended in an Int8Array, the others
 * (uint4, uint2, and float4e2m1 as 4-bit codes) in a Uint8Array.
 */
export function unpackSubByte(
  packed: Uint8Array | Int8Array,
  dtype: SubByteDType,
  count: number,
): Int8Array | Uint8Array {
  const bits = DTYPES[dtype].bits;
  const needed = Math.ceil((count * bits) / 8);
  if (packed.length < needed) {
    throw new OutpostError(
      'INVALID_ARGUMENT',
      `unpack ${dtype}: ${count} elements need ${needed} packed bytes, got ${packed.length}`,
      { details: { dtype, count, bytes: packed.length } },
    );
  }
  const bytes = packed instanceof Uint8Array ? packed : new Uint8Array(packed.buffer, packed.byteOffset, packed.length);
  const perByte = 8 / bits;
  const mask = (1 << bits) - 1;
  const signBit = 1 << (bits - 1);
  const out = isSigned(dtype) ? new Int8Array(count) : new Uint8Array(count);
  const signed = isSigned(dtype);
  for (let i = 0; i < count; i++) {
    const byte = bytes[Math.floor(i / perByte)] as number;
    const value = (byte >>> ((i % perByte) * bits)) & mask;
    out[i] = signed && (value & signBit) !== 0 ? value - (1 << bits) : value;
  }
  return out;
}

/**
 * One element per entry → packed bytes (Int8Array for the signed types, as `DTYPES` declares, else Uint8Array).
 * Values are masked to the element width, so -1 as int4 packs as 0xF.
 */
export function packSubByte(values: ArrayLike<number>, dtype: SubByteDType): Int8Array | Uint8Array {
  const bits = DTYPES[dtype].bits;
  const perByte = 8 / bits;
  const mask = (1 << bits) - 1;
  const bytes = new Uint8Array(Math.ceil((values.length * bits) / 8));
  for (let i = 0; i < values.length; i++) {
    const index = Math.floor(i / perByte);
    bytes[index] = (bytes[index] as number) | (((values[i] as number) & mask) << ((i % perByte) * bits));
  }
  return isSigned(dtype) ? new Int8Array(bytes.buffer) : bytes;
}

/** Float4 E2M1 code → value (OCP Microscaling spec v1.0, FP4 E2M1: bias 1, no Inf/NaN, max ±6). */
const FLOAT4E2M1_VALUES = Object.freeze([0, 0.5, 1, 1.5, 2, 3, 4, 6, -0, -0.5, -1, -1.5, -2, -3, -4, -6]);

/** float4e2m1 packed bytes → float32 values. */
export function float4e2m1ToFloat32(packed: Uint8Array, count: number): Float32Array {
  const codes = unpackSubByte(packed, 'float4e2m1', count);
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) out[i] = FLOAT4E2M1_VALUES[codes[i] as number] as number;
  return out;
}
