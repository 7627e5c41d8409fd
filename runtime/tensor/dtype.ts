/**
 * Element types, named as ONNX Runtime's JS API names them (`Tensor.Type`), with ONNX's `TensorProto.DataType`
 * number (onnx/onnx.proto, `enum DataType`) and storage. Names ORT's JS API lacks (bfloat16, float8, complex, 2-bit)
 * follow the ONNX enum in lower case. `bits` is the storage width of one element; sub-byte types pack
 * little-end first (ONNX IR spec, "4 bit integer types").
 */
export const DTYPES = Object.freeze({
  float32: { onnx: 1, bits: 32, array: 'Float32Array', ort: true },
  uint8: { onnx: 2, bits: 8, array: 'Uint8Array', ort: true },
  int8: { onnx: 3, bits: 8, array: 'Int8Array', ort: true },
  uint16: { onnx: 4, bits: 16, array: 'Uint16Array', ort: true },
  int16: { onnx: 5, bits: 16, array: 'Int16Array', ort: true },
  int32: { onnx: 6, bits: 32, array: 'Int32Array', ort: true },
  int64: { onnx: 7, bits: 64, array: 'BigInt64Array', ort: true },
  string: { onnx: 8, bits: 0, array: 'Array', ort: true },
  bool: { onnx: 9, bits: 8, array: 'Uint8Array', ort: true },
  float16: { onnx: 10, bits: 16, array: 'Uint16Array', ort: true },
  float64: { onnx: 11, bits: 64, array: 'Float64Array', ort: true },
  uint32: { onnx: 12, bits: 32, array: 'Uint32Array', ort: true },
  uint64: { onnx: 13, bits: 64, array: 'BigUint64Array', ort: true },
  complex64: { onnx: 14, bits: 64, array: 'Float32Array', ort: false },
  complex128: { onnx: 15, bits: 128, array: 'Float64Array', ort: false },
  bfloat16: { onnx: 16, bits: 16, array: 'Uint16Array', ort: false },
  float8e4m3fn: { onnx: 17, bits: 8, array: 'Uint8Array', ort: false },
  float8e4m3fnuz: { onnx: 18, bits: 8, array: 'Uint8Array', ort: false },
  float8e5m2: { onnx: 19, bits: 8, array: 'Uint8Array', ort: false },
  float8e5m2fnuz: { onnx: 20, bits: 8, array: 'Uint8Array', ort: false },
  uint4: { onnx: 21, bits: 4, array: 'Uint8Array', ort: true },
  int4: { onnx: 22, bits: 4, array: 'Int8Array', ort: true },
  float4e2m1: { onnx: 23, bits: 4, array: 'Uint8Array', ort: false },
  float8e8m0: { onnx: 24, bits: 8, array: 'Uint8Array', ort: false },
  uint2: { onnx: 25, bits: 2, array: 'Uint8Array', ort: false },
  int2: { onnx: 26, bits: 2, array: 'Int8Array', ort: false },
} as const);

export type DType = keyof typeof DTYPES;
export const DTYPE_NAMES = Object.freeze(Object.keys(DTYPES) as DType[]);

const byOnnx = new Map<number, DType>(DTYPE_NAMES.map((name) => [DTYPES[name].onnx, name]));

export function isDType(value: string): value is DType {
  return Object.hasOwn(DTYPES, value);
}

/** The dtype for an ONNX `TensorProto.DataType` number, or undefined for UNDEFINED and unknown numbers. */
export function dtypeFromOnnx(elemType: number): DType | undefined {
  return byOnnx.get(elemType);
}

/** Bytes needed to store `count` elements (sub-byte types round up); strings have no fixed size. */
export function byteLength(dtype: DType, count: number): number {
  return Math.ceil((DTYPES[dtype].bits * count) / 8);
}

/** Typed data as ONNX Runtime's JS API holds it, by dtype. */
export type TensorData =
  | Float32Array
  | Float64Array
  | Int8Array
  | Uint8Array
  | Int16Array
  | Uint16Array
  | Int32Array
  | Uint32Array
  | BigInt64Array
  | BigUint64Array
  | string[];

/** Typed data of a numeric dtype (everything but string). */
export type NumericData = Exclude<TensorData, string[]>;

type ArrayName = Exclude<(typeof DTYPES)[DType]['array'], 'Array'>;

/**
 * The one table from `DTYPES[…].array` names to constructors: allocation, views over bytes and the reverse
 * lookup (array → dtype) all go through it.
 */
const CONSTRUCTORS: Readonly<
  Record<
    ArrayName,
    {
      new (length: number): NumericData;
      new (buffer: ArrayBufferLike, byteOffset: number, length: number): NumericData;
    }
  >
> = Object.freeze({
  Float32Array,
  Float64Array,
  Int8Array,
  Uint8Array,
  Int16Array,
  Uint16Array,
  Int32Array,
  Uint32Array,
  BigInt64Array,
  BigUint64Array,
});

/** Array type → the dtype it implies when a tensor names none (Uint8Array → uint8, Uint16Array → uint16). */
const DTYPE_OF_ARRAY: readonly (readonly [ArrayName, DType])[] = Object.freeze([
  ['Float32Array', 'float32'],
  ['Float64Array', 'float64'],
  ['Int8Array', 'int8'],
  ['Uint8Array', 'uint8'],
  ['Int16Array', 'int16'],
  ['Uint16Array', 'uint16'],
  ['Int32Array', 'int32'],
  ['Uint32Array', 'uint32'],
  ['BigInt64Array', 'int64'],
  ['BigUint64Array', 'uint64'],
]);

/** Whether `data` is the array type ONNX Runtime's JS API expects for `dtype` (bool and uint8 share Uint8Array). */
export function dataMatchesDType(data: TensorData, dtype: DType): boolean {
  const expected = DTYPES[dtype].array;
  return expected === 'Array' ? Array.isArray(data) : data instanceof CONSTRUCTORS[expected];
}

/** A zero-filled array of `length` elements of the dtype's array type ("" for strings). */
export function allocateData(dtype: DType, length: number): TensorData {
  const name = DTYPES[dtype].array;
  return name === 'Array' ? new Array<string>(length).fill('') : new CONSTRUCTORS[name](length);
}

/**
 * A view of `length` elements of the dtype's array type over `buffer` from `byteOffset` (no copy; the offset must
 * be a multiple of the element size). Strings have no byte form: undefined.
 */
export function viewData(
  dtype: DType,
  buffer: ArrayBufferLike,
  byteOffset: number,
  length: number,
): NumericData | undefined {
  const name = DTYPES[dtype].array;
  return name === 'Array' ? undefined : new CONSTRUCTORS[name](buffer, byteOffset, length);
}

/** The dtype an array implies when none is given: its own type (Uint8Array → uint8, Uint16Array → uint16, …). */
export function dtypeOfData(data: TensorData): DType {
  if (Array.isArray(data)) return 'string';
  return DTYPE_OF_ARRAY.find(([name]) => data instanceof CONSTRUCTORS[name])?.[1] ?? 'uint8';
}
