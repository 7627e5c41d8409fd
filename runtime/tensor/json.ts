import { OutpostError } from '../errors.js';
import { isDType, type DType, type TensorData } from './dtype.js';
import { elementCount, zeros, type TensorLike } from './tensor.js';

/**
 * Tensors as JSON: `{ "shape": [...], "datatype" | "dtype": ..., "data": [...] }`, `data` flat or nested. The
 * Open Inference Protocol (KServe v2) names dtypes "FP32", "INT64", "BOOL", "BYTES"; ONNX Runtime's JS names
 * ("float32") are accepted too.
 */
export const KSERVE_DATATYPES = Object.freeze({
  BOOL: 'bool',
  UINT8: 'uint8',
  UINT16: 'uint16',
  UINT32: 'uint32',
  UINT64: 'uint64',
  INT8: 'int8',
  INT16: 'int16',
  INT32: 'int32',
  INT64: 'int64',
  FP16: 'float16',
  FP32: 'float32',
  FP64: 'float64',
  BYTES: 'string',
} as const satisfies Record<string, DType>);

const KSERVE_OF: Partial<Record<DType, string>> = Object.fromEntries(
  Object.entries(KSERVE_DATATYPES).map(([k, v]) => [v, k]),
);

export function kserveDatatype(dtype: DType): string {
  return KSERVE_OF[dtype] ?? dtype.toUpperCase();
}

export function dtypeFromName(name: string, what: string): DType {
  const dtype = Object.hasOwn(KSERVE_DATATYPES, name) ? KSERVE_DATATYPES[name as keyof typeof KSERVE_DATATYPES] : name;
  if (!isDType(dtype)) {
    throw new OutpostError(
      'INPUT_DTYPE_MISMATCH',
      `${what}: unknown datatype "${name}"; use one of ${Object.keys(KSERVE_DATATYPES).join(', ')}`,
      {
        details: { datatype: name },
      },
    );
  }
  return dtype;
}

function flatten(value: unknown, out: unknown[]): void {
  if (Array.isArray(value)) for (const v of value) flatten(v, out);
  else out.push(value);
}

/** Shape of a regular nested array (`[[1,2],[3,4]]` → [2, 2]). */
function nestedShape(value: unknown): number[] {
  const shape: number[] = [];
  let cursor = value;
  while (Array.isArray(cursor)) {
    shape.push(cursor.length);
    cursor = cursor[0];
  }
  return shape;
}

/** Fills a typed array of `dtype` from JSON values, rejecting values the type cannot hold. */
export function fillData(dtype: DType, values: readonly unknown[], what: string): TensorData {
  const data = zeros(dtype, values.length);
  const bad = (i: number): never => {
    throw new OutpostError(
      'INPUT_INVALID',
      `${what}: element ${i} (${JSON.stringify(values[i])}) is not a valid ${dtype}`,
      {
        details: { index: i },
      },
    );
  };
  if (Array.isArray(data)) {
    values.forEach((v, i) => (typeof v === 'string' ? (data[i] = v) : bad(i)));
  } else if (data instanceof BigInt64Array || data instanceof BigUint64Array) {
    values.forEach((v, i) => {
      if ((typeof v === 'number' && Number.isInteger(v)) || (typeof v === 'string' && /^-?\d+$/.test(v)))
        data[i] = BigInt(v);
      else bad(i);
    });
  } else if (dtype === 'bool') {
    values.forEach((v, i) => (typeof v === 'boolean' || v === 0 || v === 1 ? (data[i] = Number(v)) : bad(i)));
  } else if (dtype === 'float16') {
    throw new OutpostError('INPUT_INVALID', `${what}: float16 from JSON is not supported; send FP32 or binary data`);
  } else {
    const integer = !(data instanceof Float32Array || data instanceof Float64Array);
    values.forEach((v, i) => (typeof v === 'number' && (!integer || Number.isInteger(v)) ? (data[i] = v) : bad(i)));
  }
  return data;
}

/** `{ shape?, datatype?|dtype?, data }` (or a bare nested array) → a tensor; `expected` supplies what is omitted. */
export function tensorFromJson(value: unknown, what: string, expected?: DType): TensorLike {
  const object = Array.isArray(value) ? { data: value } : value;
  if (typeof object !== 'object' || object === null || !('data' in object)) {
    throw new OutpostError('INPUT_INVALID', `${what}: expected { "shape", "datatype", "data" } or a nested array`);
  }
  const record = object as { data: unknown; shape?: unknown; datatype?: unknown; dtype?: unknown };
  const typeName = record.datatype ?? record.dtype;
  if (typeName !== undefined && typeof typeName !== 'string')
    throw new OutpostError('INPUT_INVALID', `${what}: datatype must be a string`);
  const dtype = typeName === undefined ? expected : dtypeFromName(typeName, what);
  if (dtype === undefined) throw new OutpostError('INPUT_INVALID', `${what}: no datatype given`);
  const flat: unknown[] = [];
  flatten(record.data, flat);
  let dims: number[];
  if (record.shape === undefined) dims = nestedShape(record.data);
  else if (Array.isArray(record.shape) && record.shape.every((d) => Number.isInteger(d) && (d as number) >= 0)) {
    dims = record.shape as number[];
  } else throw new OutpostError('INPUT_INVALID', `${what}: shape must be an array of non-negative integers`);
  if (elementCount(dims) !== flat.length) {
    throw new OutpostError(
      'INPUT_SHAPE_MISMATCH',
      `${what}: shape [${dims.join(', ')}] needs ${elementCount(dims)} elements, data has ${flat.length}`,
      {
        details: { shape: dims, elements: flat.length },
      },
    );
  }
  return { data: fillData(dtype, flat, what), dims, type: dtype };
}

/** One element as plain JSON: bigints as numbers when exact, else strings; bool as true/false. */
export function jsonElement(v: number | bigint | string | undefined, type: DType): number | string | boolean {
  if (typeof v === 'bigint')
    return v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= -BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v.toString();
  if (type === 'bool') return v === 1;
  return v as number | string;
}

/** A tensor as plain JSON (bigints as numbers when exact, else strings). */
export function tensorToJson(tensor: { type: DType; dims: readonly number[]; data: TensorData }): {
  datatype: string;
  shape: number[];
  data: (number | string | boolean)[];
} {
  const data: (number | string | boolean)[] = [];
  const { data: values } = tensor;
  for (let i = 0; i < values.length; i++) data.push(jsonElement(values[i], tensor.type));
  return { datatype: kserveDatatype(tensor.type), shape: [...tensor.dims], data };
}
