import { endianness } from 'node:os';
import { DTYPES, viewData, type DType, type NumericData, type TensorData } from '../../tensor/dtype.js';
import { kserveDatatype } from '../../tensor/json.js';
import { elementCount, zeros } from '../../tensor/tensor.js';
import { HttpError } from '../http/status.js';

/**
 * The Open Inference Protocol's binary tensor data extension: KServe, "Binary Tensor Data Extension"
 * (https://kserve.github.io/website/docs/concepts/architecture/data-plane/v2-protocol/binary-tensor-data-extension),
 * first specified by Triton (docs/protocol/extension_binary_data.md). The body is the JSON object, then the raw
 * tensor data "in the same order as the order of the input or output tensors are specified in the JSON";
 * `Inference-Header-Content-Length` gives the JSON's length. Tensor data is "little-endian byte order, row major,
 * without stride or padding between elements".
 */
export const BINARY_EXTENSION = 'binary_tensor_data';
/** "the Inference-Header-Content-Length header must be provided to give the length of the JSON object". */
export const HEADER_LENGTH_HEADER = 'inference-header-content-length';
export const BINARY_CONTENT_TYPE = 'application/octet-stream';
/** "For BYTES type an element is represented by a 4-byte unsigned integer giving the length followed by the bytes". */
const LENGTH_PREFIX = 4; // bytes
/**
 * Where the binary section is placed in the receive buffer, and the offset an input needs to be used in place.
 * Typed arrays need only their element size, but ONNX Runtime's kernels (MLAS) round differently when data is not
 * 16-byte aligned; ONNX Runtime's own allocator aligns to 64. An input at a multiple of 64 from the buffer's start
 * (always the first; the next ones when the sizes before them are multiples of 64) is therefore viewed in place,
 * any other is copied into a fresh array: either way the results are bit-identical to JSON and in-process calls.
 */
export const BINARY_ALIGNMENT = 64; // bytes
const LITTLE_ENDIAN_HOST = endianness() === 'LE';

function bad(message: string): HttpError {
  return new HttpError(400, message, 'INPUT_INVALID');
}

/** `Inference-Header-Content-Length` as a byte count, or undefined when it is not a plain non-negative integer. */
export function parseHeaderLength(value: string | readonly string[] | undefined): number | undefined {
  if (typeof value !== 'string' || !/^\d{1,15}$/.test(value.trim())) return undefined;
  return Number(value.trim());
}

/** The JSON object and the binary section after it; 400 when the header length does not fit the body. */
export function splitBody(
  body: Buffer,
  headerValue: string | readonly string[] | undefined,
): { header: Buffer; binary: Buffer } {
  const length = parseHeaderLength(headerValue);
  if (length === undefined) {
    throw bad(
      `${HEADER_LENGTH_HEADER} must be one non-negative integer (the JSON header's length in bytes), got ${JSON.stringify(headerValue)}`,
    );
  }
  if (length > body.length) {
    throw bad(`${HEADER_LENGTH_HEADER} is ${length} but the body has only ${body.length} bytes`);
  }
  return { header: body.subarray(0, length), binary: body.subarray(length) };
}

/** Bytes per element of a dtype the extension can carry as fixed-size binary; undefined for BYTES and sub-byte types. */
export function elementBytes(dtype: DType): number | undefined {
  const { bits, ort } = DTYPES[dtype];
  return ort && bits > 0 && bits % 8 === 0 ? bits / 8 : undefined;
}

/** Splits a BYTES tensor's data into its elements (views, no copy); 400 when a length runs past the end. */
export function bytesElements(bytes: Uint8Array, what: string): Uint8Array[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const elements: Uint8Array[] = [];
  let offset = 0;
  while (offset < bytes.byteLength) {
    if (offset + LENGTH_PREFIX > bytes.byteLength) {
      throw bad(`${what}: BYTES element ${elements.length} has a truncated 4-byte length at offset ${offset}`);
    }
    const length = view.getUint32(offset, true);
    const start = offset + LENGTH_PREFIX;
    if (start + length > bytes.byteLength) {
      throw bad(
        `${what}: BYTES element ${elements.length} says ${length} bytes but only ${bytes.byteLength - start} remain`,
      );
    }
    elements.push(bytes.subarray(start, start + length));
    offset = start + length;
  }
  return elements;
}

/** Whether `bytes` is exactly one length-prefixed BYTES element (and not, say, a raw JPEG). */
export function isOneBytesElement(bytes: Uint8Array): boolean {
  if (bytes.byteLength < LENGTH_PREFIX) return false;
  const view = new DataView(bytes.buffer, bytes.byteOffset, LENGTH_PREFIX);
  return view.getUint32(0, true) === bytes.byteLength - LENGTH_PREFIX;
}

/** A typed-array view of `bytes` as `dtype` without copying, when alignment and byte order allow. */
function view(dtype: DType, bytes: Buffer, count: number): NumericData | undefined {
  const width = elementBytes(dtype) ?? 1;
  if (!LITTLE_ENDIAN_HOST && width > 1) return undefined;
  if (bytes.byteOffset % BINARY_ALIGNMENT !== 0) return undefined;
  return viewData(dtype, bytes.buffer, bytes.byteOffset, count);
}

/** Reverses each element's bytes in place: the wire is little-endian whatever the host is. */
function swap(bytes: Buffer, width: number): void {
  if (width === 2) bytes.swap16();
  else if (width === 4) bytes.swap32();
  else if (width === 8) bytes.swap64();
}

/**
 * One input's binary data → tensor data of `dtype` and `dims`. Numeric data is a view over the request buffer when
 * its offset is aligned (BINARY_ALIGNMENT), else one copy. BYTES elements are decoded as UTF-8 strings, which is
 * what ONNX Runtime's string tensors hold.
 */
export function tensorFromBinary(bytes: Buffer, dtype: DType, dims: readonly number[], what: string): TensorData {
  const count = elementCount(dims);
  const datatype = kserveDatatype(dtype);
  if (dtype === 'string') {
    const elements = bytesElements(bytes, what);
    if (elements.length !== count) {
      throw new HttpError(
        400,
        `${what}: shape [${dims.join(', ')}] needs ${count} BYTES elements, the binary data holds ${elements.length}`,
        'INPUT_SHAPE_MISMATCH',
      );
    }
    return elements.map((e) => Buffer.from(e.buffer, e.byteOffset, e.byteLength).toString('utf8'));
  }
  const width = elementBytes(dtype);
  if (width === undefined) throw bad(`${what}: datatype ${datatype} cannot be sent as binary data`);
  if (bytes.byteLength !== count * width) {
    throw bad(
      `${what}: binary_data_size is ${bytes.byteLength} bytes but shape [${dims.join(', ')}] of ${datatype} needs ${count * width}`,
    );
  }
  const direct = view(dtype, bytes, count);
  if (direct !== undefined) return direct;
  const copy = zeros(dtype, count) as NumericData;
  const target = Buffer.from(copy.buffer, copy.byteOffset, copy.byteLength);
  bytes.copy(target);
  if (!LITTLE_ENDIAN_HOST) swap(target, width);
  return copy;
}

/**
 * A tensor's data as the response's binary section carries it: for numeric types a view of the tensor's own memory
 * (no copy; a byte-swapped copy on big-endian hosts), for BYTES the length-prefixed UTF-8 elements.
 */
export function tensorToBinary(tensor: { readonly type: DType; readonly data: TensorData }): Uint8Array {
  const { data } = tensor;
  if (Array.isArray(data)) {
    let total = 0;
    for (const s of data) total += LENGTH_PREFIX + Buffer.byteLength(s, 'utf8');
    const out = Buffer.allocUnsafe(total);
    let offset = 0;
    for (const s of data) {
      const length = out.write(s, offset + LENGTH_PREFIX, 'utf8');
      out.writeUInt32LE(length, offset);
      offset += LENGTH_PREFIX + length;
    }
    return out;
  }
  const bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const width = data.BYTES_PER_ELEMENT;
  if (LITTLE_ENDIAN_HOST || width === 1) return bytes;
  const copy = Buffer.from(bytes);
  swap(copy, width);
  return copy;
}
