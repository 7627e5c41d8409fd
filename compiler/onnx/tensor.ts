import { clearField, create, isFieldSet } from '@bufbuild/protobuf';
import { TensorProtoSchema, TensorProto_DataLocation, type TensorProto } from 'onnx-buf';
import { OutpostError } from '../../runtime/errors.js';
import {
  DTYPES,
  allocateData,
  byteLength,
  dataMatchesDType,
  dtypeFromOnnx,
  dtypeOfData,
  type DType,
  type NumericData,
  type TensorData,
  HOST_IS_LITTLE_ENDIAN,
} from '../../runtime/tensor/index.js';

/**
 * TensorProto ↔ typed arrays, for every ONNX element type (onnx.proto, TensorProto.DataType). The array type per
 * dtype is the one `DTYPES` names (ONNX Runtime's JS API convention): float16 and bfloat16 as Uint16Array bits, bool
 * and float8 as Uint8Array, complex as interleaved (re, im) float arrays, sub-byte types packed (see packed.ts).
 * Reading accepts `raw_data` (little-endian) and the typed repeated fields; writing always sets `raw_data` (strings:
 * `string_data`, the only place they can live).
 */
export interface TensorValue {
  dtype: DType;
  dims: number[];
  data: TensorData;
}

type NumericArray = NumericData;

const utf8Decoder = new TextDecoder();
const utf8Encoder = new TextEncoder();

function label(tensor: TensorProto): string {
  return tensor.name === '' ? 'an unnamed tensor' : `tensor "${tensor.name}"`;
}

/** The tensor's dtype; UNDEFINED or an element type newer than this build's table is refused. */
export function tensorDType(tensor: TensorProto): DType {
  const dtype = dtypeFromOnnx(tensor.dataType);
  if (dtype === undefined) {
    throw new OutpostError(
      tensor.dataType === 0 ? 'MODEL_INVALID' : 'MODEL_UNSUPPORTED',
      `${label(tensor)} has data_type ${tensor.dataType}; expected one of ONNX TensorProto.DataType 1..26`,
      { details: { tensor: tensor.name, dataType: tensor.dataType } },
    );
  }
  return dtype;
}

export function tensorDims(tensor: TensorProto): number[] {
  return tensor.dims.map(Number);
}

export function elementCount(dims: readonly number[]): number {
  let count = 1;
  for (const d of dims) count *= d;
  return count;
}

/** Length of the JS array that holds `count` elements: complex doubles (re, im), sub-byte types count packed bytes. */
export function arrayLength(dtype: DType, count: number): number {
  if (dtype === 'complex64' || dtype === 'complex128') return count * 2;
  const bits = DTYPES[dtype].bits;
  return bits > 0 && bits < 8 ? Math.ceil((count * bits) / 8) : count;
}

/** [ONNX ExternalData.md] data_location EXTERNAL means the bytes live in the file named by external_data. */
export function usesExternalData(tensor: TensorProto): boolean {
  return tensor.dataLocation === TensorProto_DataLocation.EXTERNAL;
}

/**
 * Bytes the tensor's data occupies as raw_data: undefined for strings (no fixed width) and for element types
 * unknown to this build (kept as they are, never interpreted).
 */
export function tensorByteLength(tensor: TensorProto): number | undefined {
  const dtype = dtypeFromOnnx(tensor.dataType);
  return dtype === undefined || dtype === 'string' ? undefined : byteLength(dtype, elementCount(tensorDims(tensor)));
}

function assertLittleEndian(): void {
  if (!HOST_IS_LITTLE_ENDIAN) {
    throw new OutpostError('MODEL_UNSUPPORTED', 'ONNX raw tensor data is little-endian and this host is big-endian');
  }
}

/** Little-endian bytes → the dtype's array (a copy: raw_data views are rarely aligned for wider element types). */
export function bytesToArray(dtype: DType, bytes: Uint8Array, count: number): NumericArray {
  if (dtype === 'string') throw new OutpostError('INVALID_ARGUMENT', 'string tensors have no raw byte form');
  const out = allocateData(dtype, arrayLength(dtype, count)) as NumericArray;
  if (out.BYTES_PER_ELEMENT > 1) assertLittleEndian();
  new Uint8Array(out.buffer, 0, out.byteLength).set(bytes.subarray(0, out.byteLength));
  return out;
}

function isByteArray(data: TensorData): data is Uint8Array | Int8Array {
  return data instanceof Uint8Array || data instanceof Int8Array;
}

function checkArrayType(dtype: DType, data: TensorData): void {
  const expected = DTYPES[dtype].array;
  let ok: boolean;
  if (expected === 'Array') ok = Array.isArray(data);
  else if (DTYPES[dtype].bits <= 8)
    ok = isByteArray(data); // one-byte and packed types: view signedness is immaterial
  else ok = dataMatchesDType(data, dtype);
  if (!ok) {
    const got = Array.isArray(data) ? 'Array' : data.constructor.name;
    throw new OutpostError('INVALID_ARGUMENT', `${dtype} data must be a ${expected}, got ${got}`, {
      details: { dtype, expected, got },
    });
  }
}

/** The dtype's array → little-endian bytes (a fresh copy; bool normalised to 0/1 as onnx.proto requires). */
export function arrayToBytes(dtype: DType, data: TensorData): Uint8Array<ArrayBuffer> {
  if (dtype === 'string' || Array.isArray(data)) {
    throw new OutpostError('INVALID_ARGUMENT', 'string tensors have no raw byte form; they live in string_data');
  }
  checkArrayType(dtype, data);
  if (data.BYTES_PER_ELEMENT > 1) assertLittleEndian();
  const bytes = new Uint8Array(data.byteLength);
  bytes.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  if (dtype === 'bool') for (let i = 0; i < bytes.length; i++) bytes[i] = bytes[i] === 0 ? 0 : 1;
  return bytes;
}

function fromTypedFields(tensor: TensorProto, dtype: DType, count: number): TensorData {
  const length = arrayLength(dtype, count);
  const check = (have: number, field: string): void => {
    if (have !== length) {
      throw new OutpostError(
        'MODEL_INVALID',
        `${label(tensor)} (${dtype}, dims [${tensor.dims.join(', ')}]) needs ${length} values in ${field}, found ${have}`,
        { details: { tensor: tensor.name, dtype, field, expected: length, found: have } },
      );
    }
  };
  switch (dtype) {
    case 'string':
      check(tensor.stringData.length, 'string_data');
      return tensor.stringData.map((s) => utf8Decoder.decode(s));
    case 'float32':
    case 'complex64':
      check(tensor.floatData.length, 'float_data');
      return new Float32Array(tensor.floatData);
    case 'float64':
    case 'complex128':
      check(tensor.doubleData.length, 'double_data');
      return new Float64Array(tensor.doubleData);
    case 'int64':
      check(tensor.int64Data.length, 'int64_data');
      return new BigInt64Array(tensor.int64Data);
    case 'uint64':
      check(tensor.uint64Data.length, 'uint64_data');
      return new BigUint64Array(tensor.uint64Data);
    case 'uint32':
      check(tensor.uint64Data.length, 'uint64_data');
      return Uint32Array.from(tensor.uint64Data, Number);
    default: {
      // int32_data holds every narrower type widened, one element per entry, and sub-byte types one packed byte
      // per entry (onnx.proto, TensorProto.int32_data); assignment into the narrow array truncates back.
      check(tensor.int32Data.length, 'int32_data');
      const out = allocateData(dtype, length) as NumericArray;
      (out as Exclude<NumericArray, BigInt64Array | BigUint64Array>).set(tensor.int32Data);
      return out;
    }
  }
}

/**
 * The tensor's values as a typed array. Data must be in memory: for tensors whose data is external, use
 * `readTensor(model, tensor)` (external-data.ts), which reads the bytes from disk first.
 */
export function tensorToArray(tensor: TensorProto): TensorValue {
  const dtype = tensorDType(tensor);
  const dims = tensorDims(tensor);
  const count = elementCount(dims);
  if (usesExternalData(tensor)) {
    throw new OutpostError(
      'INVALID_ARGUMENT',
      `${label(tensor)} keeps its data in an external file; read it with readTensor()`,
      {
        details: { tensor: tensor.name },
      },
    );
  }
  if (tensor.segment !== undefined) {
    throw new OutpostError(
      'MODEL_UNSUPPORTED',
      `${label(tensor)} is a segment of a larger tensor (TensorProto.segment)`,
      {
        details: { tensor: tensor.name },
      },
    );
  }
  if (dtype !== 'string' && isFieldSet(tensor, TensorProtoSchema.field.rawData)) {
    return { dtype, dims, data: rawToArray(tensor, dtype, tensor.rawData, count) };
  }
  return { dtype, dims, data: fromTypedFields(tensor, dtype, count) };
}

/** Decodes bytes that hold this tensor's data (its raw_data, or bytes read from its external file). */
export function rawToArray(tensor: TensorProto, dtype: DType, bytes: Uint8Array, count: number): NumericArray {
  const expected = byteLength(dtype, count);
  if (bytes.length !== expected) {
    throw new OutpostError(
      'MODEL_INVALID',
      `${label(tensor)} (${dtype}, dims [${tensor.dims.join(', ')}]) needs ${expected} bytes of data, found ${bytes.length}`,
      { details: { tensor: tensor.name, dtype, expected, found: bytes.length } },
    );
  }
  return bytesToArray(dtype, bytes, count);
}

/**
 * The in-memory tensor's data as little-endian bytes: raw_data itself when set (no copy), else the typed fields
 * encoded. Used to write tensors to external data files.
 */
export function tensorBytes(tensor: TensorProto): Uint8Array<ArrayBuffer> {
  if (isFieldSet(tensor, TensorProtoSchema.field.rawData) && !usesExternalData(tensor)) return tensor.rawData;
  const { dtype, data } = tensorToArray(tensor);
  return arrayToBytes(dtype, data);
}

/** The dtype a typed array implies when none is given (Uint8Array → uint8, Uint16Array → uint16, …). */
export function inferDType(data: TensorData): DType {
  return dtypeOfData(data);
}

function checkDims(dims: readonly number[]): void {
  for (const d of dims) {
    if (!Number.isSafeInteger(d) || d < 0) {
      throw new OutpostError(
        'INVALID_ARGUMENT',
        `tensor dims must be non-negative integers, got [${dims.join(', ')}]`,
        {
          details: { dims },
        },
      );
    }
  }
}

/**
 * Replaces a tensor's data (and dtype, dims) in place: raw_data for numbers, string_data for strings; typed fields
 * and external references are cleared. Keeps name, doc_string and metadata.
 */
export function setTensorData(
  tensor: TensorProto,
  data: TensorData,
  dims: readonly number[],
  dtype = inferDType(data),
): void {
  checkDims(dims);
  const count = elementCount(dims);
  const expected = dtype === 'string' ? count : arrayLength(dtype, count);
  if (data.length !== expected) {
    throw new OutpostError(
      'INVALID_ARGUMENT',
      `${label(tensor)}: ${dtype} dims [${dims.join(', ')}] need an array of ${expected}, got ${data.length}`,
      { details: { tensor: tensor.name, dtype, dims, expected, got: data.length } },
    );
  }
  for (const field of ['floatData', 'int32Data', 'stringData', 'int64Data', 'doubleData', 'uint64Data'] as const) {
    clearField(tensor, TensorProtoSchema.field[field]);
  }
  clearField(tensor, TensorProtoSchema.field.externalData);
  clearField(tensor, TensorProtoSchema.field.dataLocation);
  tensor.dataType = DTYPES[dtype].onnx;
  tensor.dims = dims.map(BigInt);
  if (dtype === 'string') {
    checkArrayType(dtype, data);
    clearField(tensor, TensorProtoSchema.field.rawData);
    tensor.stringData = (data as string[]).map((s) => utf8Encoder.encode(s));
  } else {
    tensor.rawData = arrayToBytes(dtype, data);
  }
}

/** A new TensorProto holding `data` (dtype inferred from the array type unless given). */
export function makeTensor(
  name: string,
  data: TensorData,
  dims: readonly number[],
  dtype = inferDType(data),
): TensorProto {
  const tensor = create(TensorProtoSchema, { name });
  setTensorData(tensor, data, dims, dtype);
  return tensor;
}
