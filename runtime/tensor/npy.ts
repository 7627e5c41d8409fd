import { OutpostError } from '../errors.js';
import { DTYPES, viewData, type DType, type TensorData } from './dtype.js';

/**
 * NumPy's `.npy` format (numpy.lib.format, versions 1.0–3.0): magic, version, a header dict literal, raw data.
 * Test vectors in artifacts and `outpost run --input x.npy` use it, so fixtures come straight from Python.
 */
export interface NpyTensor {
  readonly dtype: DType;
  readonly shape: number[];
  readonly data: Exclude<TensorData, string[]>;
}

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // "\x93NUMPY"

/** numpy descr (little-endian or byte-order-free) → dtype and array constructor. */
const DESCR = Object.freeze({
  '<f4': 'float32',
  '<f8': 'float64',
  '<f2': 'float16',
  '|i1': 'int8',
  '|u1': 'uint8',
  '<i2': 'int16',
  '<u2': 'uint16',
  '<i4': 'int32',
  '<u4': 'uint32',
  '<i8': 'int64',
  '<u8': 'uint64',
  '|b1': 'bool',
} as const satisfies Record<string, DType>);

type Descr = keyof typeof DESCR;
const DESCR_OF: Partial<Record<DType, Descr>> = Object.fromEntries(Object.entries(DESCR).map(([d, t]) => [t, d]));

function invalid(what: string, message: string): OutpostError {
  return new OutpostError('INPUT_INVALID', `${what}: not a readable .npy file: ${message}`);
}

function view(dtype: DType, bytes: Uint8Array): Exclude<TensorData, string[]> {
  // Copy into a fresh, aligned buffer: the data offset in the file need not be a multiple of the element size.
  // (Not `bytes.slice()`: on a Node Buffer that is a view sharing the whole pooled ArrayBuffer.)
  const buffer = new Uint8Array(bytes).buffer;
  return viewData(dtype, buffer, 0, buffer.byteLength / (DTYPES[dtype].bits / 8)) ?? new Uint8Array(buffer);
}

export function decodeNpy(bytes: Uint8Array, what = 'npy'): NpyTensor {
  if (bytes.length < 10 || MAGIC.some((b, i) => bytes[i] !== b)) throw invalid(what, 'missing \\x93NUMPY magic');
  const major = bytes[6] ?? 0;
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = major === 1 ? dv.getUint16(8, true) : dv.getUint32(8, true);
  const headerStart = major === 1 ? 10 : 12;
  if (major < 1 || major > 3 || headerStart + headerLength > bytes.length) throw invalid(what, 'bad header');
  const header = new TextDecoder(major === 3 ? 'utf-8' : 'latin1').decode(
    bytes.subarray(headerStart, headerStart + headerLength),
  );
  const descr = /'descr':\s*'([^']+)'/.exec(header)?.[1];
  const fortran = /'fortran_order':\s*(True|False)/.exec(header)?.[1];
  const shapeText = /'shape':\s*\(([^)]*)\)/.exec(header)?.[1];
  if (descr === undefined || fortran === undefined || shapeText === undefined) throw invalid(what, `header ${header}`);
  if (fortran === 'True') throw invalid(what, 'fortran_order arrays are not supported; save with order="C"');
  if (!Object.hasOwn(DESCR, descr)) {
    throw invalid(what, `dtype ${descr} is not supported; use one of ${Object.keys(DESCR).join(' ')}`);
  }
  const dtype = DESCR[descr as Descr];
  const shape = shapeText
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')
    .map(Number);
  const count = shape.reduce((a, b) => a * b, 1);
  const itemSize = Number(descr.slice(2));
  const start = headerStart + headerLength;
  if (bytes.length - start < count * itemSize) {
    throw invalid(
      what,
      `expected ${count * itemSize} data bytes for shape (${shape.join(', ')}), found ${bytes.length - start}`,
    );
  }
  return { dtype, shape, data: view(dtype, bytes.subarray(start, start + count * itemSize)) };
}

export function encodeNpy(tensor: NpyTensor): Uint8Array {
  const descr = DESCR_OF[tensor.dtype];
  if (descr === undefined) throw new OutpostError('INVALID_ARGUMENT', `cannot write ${tensor.dtype} as .npy`);
  const shape = tensor.shape.length === 1 ? `(${tensor.shape[0]},)` : `(${tensor.shape.join(', ')})`;
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shape}, }`;
  // Header + preamble padded to a multiple of 64 bytes, ending in "\n" (numpy.lib.format, version 1.0).
  const total = Math.ceil((10 + header.length + 1) / 64) * 64;
  header = header.padEnd(total - 10 - 1, ' ') + '\n';
  const data = new Uint8Array(tensor.data.buffer, tensor.data.byteOffset, tensor.data.byteLength);
  const out = new Uint8Array(total + data.byteLength);
  out.set(MAGIC, 0);
  out[6] = 1;
  out[7] = 0;
  new DataView(out.buffer).setUint16(8, header.length, true);
  out.set(new TextEncoder().encode(header), 10);
  out.set(data, total);
  return out;
}
