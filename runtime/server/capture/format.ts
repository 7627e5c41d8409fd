import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import * as z from 'zod';
import { OutpostError, fromFsError, messageOf } from '../../errors.js';
import type { DType, TensorData } from '../../tensor/dtype.js';
import { dtypeOfData, isDType } from '../../tensor/dtype.js';
import { dtypeFromName, kserveDatatype } from '../../tensor/json.js';
import { decodeNpy, encodeNpy } from '../../tensor/npy.js';
import { zeros, type TensorLike } from '../../tensor/tensor.js';

/**
 * The data-capture file format (docs/serving-operations.md, "Data capture"): JSON lines, one record per sampled
 * call, tensors inline (base64 of the little-endian element bytes) or in `.npy` side files next to the line's file.
 * With a key, every line is sealed with AES-256-GCM on its own (a torn last line after a crash costs one record,
 * never the file), and every side file as a whole.
 */

/** A tensor in a record: exactly one of `data` (base64), `file` (side file, relative to the record's file) or `values` (strings). */
export const captureTensorSchema = z
  .object({
    datatype: z.string().min(1),
    shape: z.array(z.number().int().nonnegative()),
    data: z.string().optional(),
    /** A bare file name: a record can only name files beside its own (never `../` anything). */
    file: z
      .string()
      .regex(/^[\w.-]+$/, 'a bare file name')
      .refine((f) => f !== '.' && f !== '..', 'a bare file name')
      .optional(),
    values: z.array(z.string()).optional(),
  })
  .refine((t) => [t.data, t.file, t.values].filter((x) => x !== undefined).length === 1, {
    message: 'exactly one of data, file or values',
  });
export type CaptureTensor = z.infer<typeof captureTensorSchema>;

export const captureRecordSchema = z.object({
  /** When the call finished, ISO 8601. */
  ts: z.string(),
  model: z.string(),
  version: z.string(),
  latencyMs: z.number(),
  inputs: z.record(z.string(), captureTensorSchema),
  outputs: z.record(z.string(), captureTensorSchema),
  error: z.object({ code: z.string(), message: z.string() }).optional(),
});
export type CaptureRecord = z.infer<typeof captureRecordSchema>;

/** Side files written under a key end in this after `.npy`: they are no longer `.npy` files. */
export const SEALED_SUFFIX = '.enc';

/** AES-256-GCM framing: nonce ‖ ciphertext ‖ tag (NIST SP 800-38D: 96-bit IV, 128-bit tag). */
export const CAPTURE_KEY_BYTES = 32;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
/** Additional authenticated data: names the format, so a sealed capture line cannot pass for another format's. */
const AAD = Buffer.from('outpost-capture-v1', 'ascii');

export function checkCaptureKey(key: Uint8Array): Buffer {
  if (key.length !== CAPTURE_KEY_BYTES) {
    throw new OutpostError(
      'INVALID_ARGUMENT',
      `a capture encryption key is ${CAPTURE_KEY_BYTES} bytes (AES-256), not ${key.length}`,
      { details: { bytes: key.length } },
    );
  }
  return Buffer.from(key);
}

/**
 * A key file as operators write it: 64 hex characters, 44 base64 characters, or 32 raw bytes
 * (`openssl rand -hex 32 > capture.key`).
 */
export async function readCaptureKey(path: string): Promise<Buffer> {
  let raw: Buffer;
  try {
    raw = await readFile(path);
  } catch (error) {
    throw fromFsError(error, path, 'read');
  }
  if (raw.length === CAPTURE_KEY_BYTES) return raw;
  const text = raw.toString('utf8').trim();
  const key = /^[0-9a-fA-F]{64}$/.test(text) ? Buffer.from(text, 'hex') : Buffer.from(text, 'base64');
  if (key.length !== CAPTURE_KEY_BYTES) {
    throw new OutpostError(
      'CONFIG_INVALID',
      `${path}: a capture key is 64 hex characters, base64 of 32 bytes, or 32 raw bytes`,
      { details: { path } },
    );
  }
  return key;
}

export function sealBytes(key: Buffer, plain: Uint8Array): Buffer {
  const nonce = randomBytes(NONCE_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key, nonce).setAAD(AAD);
  const body = Buffer.concat([cipher.update(plain), cipher.final()]);
  return Buffer.concat([nonce, body, cipher.getAuthTag()]);
}

export function openBytes(key: Buffer, sealed: Uint8Array, what: string): Buffer {
  if (sealed.length < NONCE_BYTES + TAG_BYTES) {
    throw new OutpostError('CAPTURE_DECRYPT_FAILED', `${what}: ${sealed.length} bytes is too short to be sealed`);
  }
  const bytes = Buffer.from(sealed.buffer, sealed.byteOffset, sealed.byteLength);
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, bytes.subarray(0, NONCE_BYTES)).setAAD(AAD);
    decipher.setAuthTag(bytes.subarray(bytes.length - TAG_BYTES));
    return Buffer.concat([decipher.update(bytes.subarray(NONCE_BYTES, bytes.length - TAG_BYTES)), decipher.final()]);
  } catch (error) {
    throw new OutpostError('CAPTURE_DECRYPT_FAILED', `${what}: cannot decrypt (wrong key, or the data was altered)`, {
      cause: error,
    });
  }
}

/** One record as one line of its file, newline included. */
export function encodeLine(record: CaptureRecord, key: Buffer | undefined): string {
  const json = JSON.stringify(record);
  return `${key === undefined ? json : sealBytes(key, Buffer.from(json, 'utf8')).toString('base64')}\n`;
}

function decodeLine(line: string, key: Buffer | undefined, what: string): CaptureRecord {
  const sealed = !line.startsWith('{');
  if (sealed && key === undefined)
    throw new OutpostError('CAPTURE_DECRYPT_FAILED', `${what} is encrypted; a 32-byte capture key is needed`);
  if (!sealed && key !== undefined)
    throw new OutpostError('CAPTURE_INVALID', `${what} is plain text in a file read as encrypted`);
  let value: unknown;
  try {
    const text = key === undefined ? line : openBytes(key, Buffer.from(line, 'base64'), what).toString('utf8');
    value = JSON.parse(text);
  } catch (error) {
    if (error instanceof OutpostError) throw error;
    throw new OutpostError('CAPTURE_INVALID', `${what} is not JSON: ${messageOf(error)}`, { cause: error });
  }
  const parsed = captureRecordSchema.safeParse(value);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ');
    throw new OutpostError('CAPTURE_INVALID', `${what} is not a capture record: ${issues}`);
  }
  return parsed.data;
}

/**
 * Reads a capture file, decrypting with `key` when it was written with one. A last line without its newline was
 * torn by a crash mid-append and is skipped; any other bad line is an error naming it.
 */
export async function readCapture(path: string, key?: Uint8Array): Promise<CaptureRecord[]> {
  const checked = key === undefined ? undefined : checkCaptureKey(key);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw fromFsError(error, path, 'read');
  }
  const lines = text.split('\n');
  lines.pop(); // after the last newline: empty, or a torn line
  return lines.map((line, i) => decodeLine(line, checked, `${path} line ${i + 1}`));
}

/** A tensor as captured: a private copy, so callers may reuse their buffers once the call returned. */
export interface TensorSnapshot {
  readonly type: DType;
  readonly dims: readonly number[];
  readonly data: TensorData;
}

/** The tensor's dtype: its `type`, else what its array implies (Uint8Array reads as uint8; bool feeds name theirs). */
function dtypeOf(t: TensorLike): DType {
  return t.type ?? dtypeOfData(t.data);
}

/** Bytes a tensor occupies in memory (strings: their UTF-16 length), for bounding the capture queue. */
export function tensorBytes(t: TensorLike): number {
  if (!Array.isArray(t.data)) return t.data.byteLength;
  let n = 0;
  for (const s of t.data) n += s.length * 2;
  return n;
}

export function snapshotTensor(t: TensorLike): TensorSnapshot {
  const data = Array.isArray(t.data) ? [...t.data] : t.data.slice();
  return { type: dtypeOf(t), dims: [...t.dims], data };
}

export function inlineTensor(t: TensorSnapshot): CaptureTensor {
  const shape = [...t.dims];
  if (Array.isArray(t.data)) return { datatype: kserveDatatype(t.type), shape, values: [...t.data] };
  const bytes = Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength);
  return { datatype: kserveDatatype(t.type), shape, data: bytes.toString('base64') };
}

/** The tensor as `.npy` bytes, or undefined for what `.npy` cannot hold (strings, sub-byte and exotic floats). */
export function npyTensor(t: TensorSnapshot): Uint8Array | undefined {
  if (Array.isArray(t.data)) return undefined;
  try {
    return encodeNpy({ dtype: t.type, shape: [...t.dims], data: t.data });
  } catch {
    return undefined;
  }
}

function dtypeOfName(name: string, what: string): DType {
  const lower = name.toLowerCase();
  return isDType(lower) ? lower : dtypeFromName(name, what);
}

function fromBytes(dtype: DType, bytes: Buffer, what: string): TensorData {
  const sample = zeros(dtype, 0);
  if (Array.isArray(sample)) throw new OutpostError('CAPTURE_INVALID', `${what}: ${dtype} data is not bytes`);
  if (bytes.length % sample.BYTES_PER_ELEMENT !== 0) {
    throw new OutpostError('CAPTURE_INVALID', `${what}: ${bytes.length} bytes is not a whole number of ${dtype}`);
  }
  const Typed = sample.constructor as new (buffer: ArrayBuffer) => Exclude<TensorData, string[]>;
  // A fresh, aligned copy: Buffer.from(base64) may sit at any offset of Node's shared pool.
  return new Typed(new Uint8Array(bytes).buffer);
}

/** The tensor a record holds, read from its side file when it has one (`capturePath`: the record's file). */
export async function readCaptureTensor(
  capturePath: string,
  tensor: CaptureTensor,
  key?: Uint8Array,
): Promise<TensorSnapshot> {
  const what = `${capturePath} tensor`;
  const type = dtypeOfName(tensor.datatype, what);
  if (tensor.values !== undefined) return { type, dims: tensor.shape, data: tensor.values };
  if (tensor.data !== undefined)
    return { type, dims: tensor.shape, data: fromBytes(type, Buffer.from(tensor.data, 'base64'), what) };
  if (tensor.file === undefined) throw new OutpostError('CAPTURE_INVALID', `${what} has no data, file or values`);
  const path = join(dirname(capturePath), tensor.file);
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (error) {
    throw fromFsError(error, path, 'read');
  }
  if (key === undefined && path.endsWith(SEALED_SUFFIX))
    throw new OutpostError('CAPTURE_DECRYPT_FAILED', `${path} is encrypted; a 32-byte capture key is needed`);
  const plain = key === undefined ? bytes : openBytes(checkCaptureKey(key), bytes, path);
  const npy = decodeNpy(plain, path);
  return { type: npy.dtype, dims: npy.shape, data: npy.data };
}
