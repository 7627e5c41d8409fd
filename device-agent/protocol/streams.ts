import { base64ToBytes, bitmapFromJson } from './bitmap.js';
import { type CborValue, cborHead, decodeCbor, encodeCbor } from './cbor.js';
import { ProtocolError } from './errors.js';
import { MAX_CLIENT_TOKEN_BYTES } from './ids.js';
import {
  MAX_BITMAP_BYTES,
  MAX_BLOCKS_REQUESTED,
  MAX_BLOCK_OFFSET,
  MAX_BLOCK_SIZE,
  MAX_FILE_ID,
  MIN_BLOCK_SIZE,
} from './limits.js';
import type { StreamEncoding } from './topics.js';

/**
 * The messages of MQTT-based file delivery (developer guide, mqtt-based-file-delivery-in-devices), in JSON and in
 * CBOR, with AWS's one-letter keys. Byte fields (`p`, `b`) are CBOR byte strings, and base64 strings in JSON (see
 * bitmap.ts on the guide's "hexadecimal" wording). Requests decode to a result carrying the guide's error code, which
 * the service sends back on `…/rejected/{encoding}`; replies decode or throw PROTOCOL_MESSAGE_INVALID.
 */

/** DescribeStream request: `{ "c": client token }`, all optional. */
export interface DescribeStreamRequest {
  c?: string;
}

/** DescribeStream response: `c` token, `s` stream version, `d` description, `r` files (`f` id, `z` size in bytes). */
export interface StreamDescription {
  c?: string;
  s: number;
  d: string;
  r: { f: number; z: number }[];
}

/**
 * GetStream request: `c` token, `s` expected stream version, `f` file id, `l` block size, `o` first block,
 * `n` blocks wanted (with `b`, a cap), `b` bitmap of wanted blocks relative to `o` (bitmap.ts).
 */
export interface GetStreamRequest {
  c?: string;
  s?: number;
  f: number;
  l: number;
  o?: number;
  n?: number;
  b?: Uint8Array;
}

/** GetStream response, one per block, on `…/data/{encoding}`: `f` file, `l` payload bytes, `i` block id, `p` payload. */
export interface DataBlock {
  c?: string;
  f: number;
  l: number;
  i: number;
  p: Uint8Array;
}

/** "Handling errors from AWS IoT MQTT-based file delivery": the error codes, in the guide's order. */
export const STREAM_ERROR_CODES = Object.freeze([
  'InvalidTopic',
  'InvalidJson',
  'InvalidCbor',
  'InvalidRequest',
  'Unauthorized',
  'BlockSizeOutOfBounds',
  'OffsetOutOfBounds',
  'BlockCountLimitExceeded',
  'BlockBitmapLimitExceeded',
  'ResourceNotFound',
  'VersionMismatch',
  'ETagMismatch',
  'InternalError',
] as const);
export type StreamErrorCode = (typeof STREAM_ERROR_CODES)[number];

/** Error response: `o` code, `m` message, `c` token ("not always included"). */
export interface StreamRejected {
  o: StreamErrorCode;
  m: string;
  c?: string;
}

export type StreamMessage = DescribeStreamRequest | StreamDescription | GetStreamRequest | DataBlock | StreamRejected;

export type StreamDecoded<T> = { ok: true; value: T } | { ok: false; rejection: StreamRejected };

// ── Encoding ────────────────────────────────────────────────────────────────────────────────────────────────

export function encodeStreamMessage(encoding: StreamEncoding, message: StreamMessage): Uint8Array {
  if (encoding === 'cbor') return encodeCbor(message as unknown as CborValue);
  // Converted before stringify: a Buffer's toJSON() would otherwise turn it into {"type":"Buffer","data":[…]}.
  const plain = Object.fromEntries(
    Object.entries(message).map(([key, value]: [string, unknown]) => [
      key,
      value instanceof Uint8Array
        ? Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('base64')
        : value,
    ]),
  );
  return Buffer.from(JSON.stringify(plain), 'utf8');
}

/** A data message being built (service side): fill `payload`, then send `message()`. */
export interface DataMessageFrame {
  /** The block's `length` bytes, to be filled in place (read from the file straight into the message in CBOR). */
  readonly payload: Buffer;
  message(): Uint8Array;
}

/**
 * A data message with room for its block: in CBOR the map's framing, then `p`'s head, then the block's bytes in the
 * same buffer, so a block read from disk is not copied again to frame it. Same bytes as `encodeStreamMessage`.
 */
export function dataMessageFrame(
  encoding: StreamEncoding,
  fields: Omit<DataBlock, 'p' | 'l'>,
  length: number,
): DataMessageFrame {
  const head: Record<string, number | string> = { ...(fields.c === undefined ? {} : { c: fields.c }) };
  Object.assign(head, { f: fields.f, l: length, i: fields.i });
  if (encoding === 'json') {
    const payload = Buffer.allocUnsafe(length);
    return { payload, message: () => encodeStreamMessage('json', { ...head, p: payload } as unknown as DataBlock) };
  }
  const entries = Object.entries(head);
  const parts = [cborHead(5, entries.length + 1)];
  for (const [key, value] of entries) parts.push(encodeCbor(key), encodeCbor(value));
  parts.push(encodeCbor('p'), cborHead(2, length));
  const framing = parts.reduce((sum, part) => sum + part.length, 0);
  const buffer = Buffer.allocUnsafe(framing + length);
  let at = 0;
  for (const part of parts) {
    buffer.set(part, at);
    at += part.length;
  }
  return { payload: buffer.subarray(framing), message: () => buffer };
}

// ── Decoding requests (service side): failures become the guide's rejection ─────────────────────────────────

export function decodeDescribeStreamRequest(
  encoding: StreamEncoding,
  payload: Uint8Array,
): StreamDecoded<DescribeStreamRequest> {
  const body = decodeBody(encoding, payload, true);
  if (!body.ok) return body;
  const c = clientToken(body.value);
  if (c instanceof Rejection) return c.result();
  return { ok: true, value: c === undefined ? {} : { c } };
}

export function decodeGetStreamRequest(encoding: StreamEncoding, payload: Uint8Array): StreamDecoded<GetStreamRequest> {
  const body = decodeBody(encoding, payload, false);
  if (!body.ok) return body;
  const fields = body.value;
  const c = clientToken(fields);
  if (c instanceof Rejection) return c.result();
  const token = c === undefined ? {} : { c };
  const reject = (o: StreamErrorCode, m: string): StreamDecoded<GetStreamRequest> => ({
    ok: false,
    rejection: { o, m, ...token },
  });
  const s = integer(fields.s);
  if (fields.s !== undefined && (s === undefined || s < 0))
    return reject('InvalidRequest', 's: expected a stream version ≥ 0');
  const f = integer(fields.f);
  if (f === undefined || f < 0 || f > MAX_FILE_ID)
    return reject('InvalidRequest', `f: expected a file id 0–${MAX_FILE_ID}`);
  const l = integer(fields.l);
  if (l === undefined) return reject('InvalidRequest', 'l: expected a block size');
  if (l < MIN_BLOCK_SIZE || l > MAX_BLOCK_SIZE) {
    return reject('BlockSizeOutOfBounds', `l: block size ${l} is outside ${MIN_BLOCK_SIZE}–${MAX_BLOCK_SIZE}`);
  }
  const o = integer(fields.o);
  if (fields.o !== undefined && o === undefined) return reject('InvalidRequest', 'o: expected a block offset');
  if (o !== undefined && (o < 0 || o > MAX_BLOCK_OFFSET)) {
    return reject('OffsetOutOfBounds', `o: offset ${o} is outside 0–${MAX_BLOCK_OFFSET}`);
  }
  const n = integer(fields.n);
  if (fields.n !== undefined && n === undefined) return reject('InvalidRequest', 'n: expected a number of blocks');
  if (n !== undefined && (n < 0 || n > MAX_BLOCKS_REQUESTED)) {
    return reject('BlockCountLimitExceeded', `n: ${n} blocks is outside 0–${MAX_BLOCKS_REQUESTED}`);
  }
  let b: Uint8Array | undefined;
  if (fields.b !== undefined) {
    try {
      b = bytesField(fields.b, 'b', bitmapFromJson);
    } catch (error) {
      return reject('InvalidRequest', (error as Error).message);
    }
    if (b.length > MAX_BITMAP_BYTES) {
      return reject('BlockBitmapLimitExceeded', `b: bitmap of ${b.length} bytes; at most ${MAX_BITMAP_BYTES}`);
    }
  }
  const value: GetStreamRequest = { ...token, f, l };
  if (s !== undefined) value.s = s;
  if (o !== undefined) value.o = o;
  if (n !== undefined) value.n = n;
  if (b !== undefined) value.b = b;
  return { ok: true, value };
}

// ── Decoding replies (device side): failures throw ──────────────────────────────────────────────────────────

export function decodeStreamDescription(encoding: StreamEncoding, payload: Uint8Array): StreamDescription {
  const fields = replyBody(encoding, payload);
  const s = integer(fields.s);
  const r = fields.r;
  if (s === undefined || typeof fields.d !== 'string' || !Array.isArray(r)) {
    throw messageInvalid('description: expected s (integer), d (string) and r (array)');
  }
  const files = (r as unknown[]).map((entry) => {
    const f = integer((entry as Record<string, unknown> | null)?.f);
    const z = integer((entry as Record<string, unknown> | null)?.z);
    if (f === undefined || z === undefined) throw messageInvalid('description: every r entry needs f and z integers');
    return { f, z };
  });
  return { ...optionalToken(fields), s, d: fields.d, r: files };
}

/**
 * A data message. In CBOR, `p` is a view into `payload`, not a copy (the block is hashed and written, then
 * dropped): the caller must not keep it longer than it would keep `payload`.
 */
export function decodeDataBlock(encoding: StreamEncoding, payload: Uint8Array): DataBlock {
  const fields = replyBody(encoding, payload, true);
  const f = integer(fields.f);
  const l = integer(fields.l);
  const i = integer(fields.i);
  if (f === undefined || l === undefined || i === undefined || fields.p === undefined) {
    throw messageInvalid('data: expected f, l, i (integers) and p');
  }
  const p = bytesField(fields.p, 'p', (text) => {
    const bytes = base64ToBytes(text);
    if (bytes === undefined) throw messageInvalid('data: p is not base64');
    return bytes;
  });
  if (p.length !== l) throw messageInvalid(`data: l says ${l} bytes but p holds ${p.length}`);
  return { ...optionalToken(fields), f, l, i, p };
}

/** Also reads the long field names the guide allows "for backward compatibility" (`code`, `message`, `clientToken`). */
export function decodeStreamRejected(encoding: StreamEncoding, payload: Uint8Array): StreamRejected {
  const fields = replyBody(encoding, payload);
  const o = fields.o ?? fields.code;
  const m = fields.m ?? fields.message ?? '';
  const c = fields.c ?? fields.clientToken;
  if (typeof o !== 'string' || typeof m !== 'string') throw messageInvalid('rejected: expected o (string)');
  const code = (STREAM_ERROR_CODES as readonly string[]).includes(o) ? (o as StreamErrorCode) : 'InternalError';
  return { o: code, m: code === o ? m : `${o}: ${m}`, ...(typeof c === 'string' ? { c } : {}) };
}

// ── Helpers ─────────────────────────────────────────────────────────────────────────────────────────────────

class Rejection {
  constructor(private readonly rejection: StreamRejected) {}
  result<T>(): StreamDecoded<T> {
    return { ok: false, rejection: this.rejection };
  }
}

type Fields = Record<string, unknown>;

function decodeBody(
  encoding: StreamEncoding,
  payload: Uint8Array,
  emptyIsObject: boolean,
  byteViews = false,
): StreamDecoded<Fields> {
  if (emptyIsObject && payload.length === 0) return { ok: true, value: {} };
  let value: unknown;
  try {
    value =
      encoding === 'json'
        ? JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(payload))
        : decodeCbor(payload, { byteViews });
  } catch (error) {
    const o = encoding === 'json' ? 'InvalidJson' : 'InvalidCbor';
    return {
      ok: false,
      rejection: { o, m: `request is not valid ${encoding.toUpperCase()}: ${(error as Error).message}` },
    };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value) || value instanceof Uint8Array) {
    return { ok: false, rejection: { o: 'InvalidRequest', m: 'request must be a map/object' } };
  }
  return { ok: true, value: value as Fields };
}

function replyBody(encoding: StreamEncoding, payload: Uint8Array, byteViews = false): Fields {
  const body = decodeBody(encoding, payload, false, byteViews);
  if (!body.ok) throw messageInvalid(body.rejection.m);
  return body.value;
}

/** The guide: a token over 64 bytes is InvalidRequest, and "When the client token … isn't valid …, it's not returned". */
function clientToken(fields: Fields): string | undefined | Rejection {
  const c = fields.c;
  if (c === undefined) return undefined;
  if (typeof c !== 'string' || Buffer.byteLength(c, 'utf8') > MAX_CLIENT_TOKEN_BYTES) {
    return new Rejection({
      o: 'InvalidRequest',
      m: `c: client token must be a string of at most ${MAX_CLIENT_TOKEN_BYTES} bytes`,
    });
  }
  return c;
}

function optionalToken(fields: Fields): { c?: string } {
  return typeof fields.c === 'string' ? { c: fields.c } : {};
}

function integer(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isSafeInteger(value) ? value : undefined;
}

/** A byte field: a CBOR byte string as is, a string through `fromText` (base64 in JSON). */
function bytesField(value: unknown, name: string, fromText: (text: string) => Uint8Array): Uint8Array {
  if (value instanceof Uint8Array) return value;
  if (typeof value === 'string') return fromText(value);
  throw messageInvalid(`${name}: expected bytes`);
}

function messageInvalid(message: string): ProtocolError {
  return new ProtocolError('PROTOCOL_MESSAGE_INVALID', `invalid stream message: ${message}`);
}
