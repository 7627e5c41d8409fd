import { ProtocolError } from './errors.js';

/**
 * The subset of CBOR (RFC 8949) that MQTT-based file delivery uses: maps with text keys, unsigned and negative
 * integers, text and byte strings, arrays, booleans, null, floats. Small enough to own, and strict, because it decodes
 * what any client on the broker sends: lengths are checked against the bytes present before anything is allocated,
 * nesting is bounded, duplicate keys, tags and trailing bytes are refused. Indefinite lengths (§3.2.2) are decoded,
 * as the service itself sends data responses as indefinite-length maps; the encoder always writes definite lengths
 * (§4.2.1, preferred serialization).
 */
export type CborValue =
  | number
  | string
  | boolean
  | null
  | undefined
  | Uint8Array
  | readonly CborValue[]
  | { readonly [key: string]: CborValue };

const MAX_DEPTH = 16;
const BREAK = 0xff;

// ── Encoding ────────────────────────────────────────────────────────────────────────────────────────────────

export function encodeCbor(value: CborValue): Uint8Array {
  const chunks: Uint8Array[] = [];
  write(chunks, value, 0);
  return Buffer.concat(chunks);
}

/** An item's head (§3): major type and argument; a byte string's head is followed by its `n` bytes. */
export function cborHead(major: number, n: number): Uint8Array {
  return head(major, n);
}

function head(major: number, n: number): Uint8Array {
  // §3: the argument in the initial byte (< 24) or in the following 1, 2, 4 or 8 bytes (additional info 24–27).
  if (n < 24) return Uint8Array.of((major << 5) | n);
  if (n <= 0xff) return Uint8Array.of((major << 5) | 24, n);
  if (n <= 0xffff) return Uint8Array.of((major << 5) | 25, n >> 8, n & 0xff);
  const out = Buffer.alloc(n <= 0xffffffff ? 5 : 9);
  out[0] = (major << 5) | (n <= 0xffffffff ? 26 : 27);
  if (n <= 0xffffffff) out.writeUInt32BE(n, 1);
  else out.writeBigUInt64BE(BigInt(n), 1);
  return out;
}

function write(chunks: Uint8Array[], value: CborValue, depth: number): void {
  if (depth > MAX_DEPTH) throw invalid(`nesting deeper than ${MAX_DEPTH}`);
  if (value === null) chunks.push(Uint8Array.of(0xf6));
  else if (value === undefined) chunks.push(Uint8Array.of(0xf7));
  else if (value === false) chunks.push(Uint8Array.of(0xf4));
  else if (value === true) chunks.push(Uint8Array.of(0xf5));
  else if (typeof value === 'number') writeNumber(chunks, value);
  else if (typeof value === 'string') {
    const bytes = Buffer.from(value, 'utf8');
    chunks.push(head(3, bytes.length), bytes);
  } else if (value instanceof Uint8Array) chunks.push(head(2, value.length), value);
  else if (Array.isArray(value)) {
    const items = value as readonly CborValue[];
    chunks.push(head(4, items.length));
    for (const item of items) write(chunks, item, depth + 1);
  } else {
    // Like JSON.stringify, a key whose value is undefined is left out.
    const entries = Object.entries(value as Record<string, CborValue>).filter(([, v]) => v !== undefined);
    chunks.push(head(5, entries.length));
    for (const [key, item] of entries) {
      write(chunks, key, depth + 1);
      write(chunks, item, depth + 1);
    }
  }
}

function writeNumber(chunks: Uint8Array[], n: number): void {
  if (Number.isSafeInteger(n)) {
    chunks.push(n >= 0 ? head(0, n) : head(1, -1 - n));
    return;
  }
  const out = Buffer.alloc(9);
  out[0] = 0xfb; // §3.3: major 7, additional info 27, IEEE 754 binary64
  out.writeDoubleBE(n, 1);
  chunks.push(out);
}

// ── Decoding ────────────────────────────────────────────────────────────────────────────────────────────────

export interface CborDecodeOptions {
  /** Byte strings as views into `bytes` rather than copies (default false: a copy outlives a pooled buffer). */
  readonly byteViews?: boolean;
}

export function decodeCbor(bytes: Uint8Array, options: CborDecodeOptions = {}): CborValue {
  const reader = new Reader(bytes, options.byteViews === true);
  const value = reader.item(0);
  if (reader.offset !== bytes.length) throw invalid(`${bytes.length - reader.offset} bytes after the first item`);
  return value;
}

/** The same bytes as a plain Uint8Array (a Buffer's subarray is a Buffer). */
function plainView(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function invalid(message: string): ProtocolError {
  return new ProtocolError('PROTOCOL_CBOR_INVALID', `invalid CBOR: ${message}`);
}

class Reader {
  offset = 0;
  private readonly view: DataView;

  constructor(
    private readonly bytes: Uint8Array,
    private readonly byteViews: boolean,
  ) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  item(depth: number): CborValue {
    if (depth > MAX_DEPTH) throw invalid(`nesting deeper than ${MAX_DEPTH}`);
    const initial = this.byte();
    const major = initial >> 5;
    const info = initial & 0x1f;
    if (major === 7) return this.simple(info);
    if (info === 31) return this.indefinite(major, depth);
    const n = this.argument(info);
    switch (major) {
      case 0:
        return n;
      case 1:
        return -1 - n;
      case 2:
        // A copy, as a plain Uint8Array: not a view into the message (which may be a pooled Buffer), unless asked.
        return this.byteViews ? plainView(this.take(n)) : new Uint8Array(this.take(n));
      case 3:
        return this.text(n);
      case 4:
        return this.array(n, depth);
      case 5:
        return this.map(n, depth);
      default:
        throw invalid(`tags (major type 6) are not supported (at byte ${this.offset - 1})`);
    }
  }

  private byte(): number {
    if (this.offset >= this.bytes.length) throw invalid('truncated');
    return this.view.getUint8(this.offset++);
  }

  private take(n: number): Uint8Array {
    if (n > this.bytes.length - this.offset) throw invalid(`length ${n} runs past the end`);
    const out = this.bytes.subarray(this.offset, this.offset + n);
    this.offset += n;
    return out;
  }

  private argument(info: number): number {
    if (info < 24) return info;
    const width = info === 24 ? 1 : info === 25 ? 2 : info === 26 ? 4 : info === 27 ? 8 : 0;
    if (width === 0) throw invalid(`reserved additional information ${info}`);
    const at = this.offset;
    this.take(width);
    if (width === 1) return this.view.getUint8(at);
    if (width === 2) return this.view.getUint16(at);
    if (width === 4) return this.view.getUint32(at);
    const big = this.view.getBigUint64(at);
    if (big > BigInt(Number.MAX_SAFE_INTEGER)) throw invalid('integer beyond 2^53');
    return Number(big);
  }

  private text(n: number): string {
    try {
      return new TextDecoder('utf-8', { fatal: true }).decode(this.take(n));
    } catch {
      throw invalid('text string is not UTF-8');
    }
  }

  private array(n: number, depth: number): CborValue[] {
    // Each item takes at least one byte: a count beyond the bytes left is a lie, refused before allocating.
    if (n > this.bytes.length - this.offset) throw invalid(`array of ${n} items runs past the end`);
    const out: CborValue[] = [];
    for (let i = 0; i < n; i++) out.push(this.item(depth + 1));
    return out;
  }

  private map(n: number, depth: number): Record<string, CborValue> {
    if (n > this.bytes.length - this.offset) throw invalid(`map of ${n} pairs runs past the end`);
    const out: Record<string, CborValue> = {};
    for (let i = 0; i < n; i++) this.entry(out, depth);
    return out;
  }

  private entry(out: Record<string, CborValue>, depth: number): void {
    const key = this.item(depth + 1);
    if (typeof key !== 'string') throw invalid('map keys must be text strings');
    if (Object.hasOwn(out, key)) throw invalid(`duplicate map key ${JSON.stringify(key)}`);
    Object.defineProperty(out, key, { value: this.item(depth + 1), enumerable: true, writable: true });
  }

  private indefinite(major: number, depth: number): CborValue {
    const atBreak = (): boolean => {
      if (this.offset >= this.bytes.length) throw invalid('indefinite-length item without a break');
      if (this.view.getUint8(this.offset) !== BREAK) return false;
      this.offset++;
      return true;
    };
    if (major === 2 || major === 3) {
      // §3.2.3: chunks are definite-length strings of the same major type.
      const chunks: Uint8Array[] = [];
      while (!atBreak()) {
        const initial = this.byte();
        if (initial >> 5 !== major || (initial & 0x1f) === 31)
          throw invalid('bad chunk in an indefinite-length string');
        chunks.push(this.take(this.argument(initial & 0x1f)));
      }
      const joined = Buffer.concat(chunks);
      if (major === 2) return new Uint8Array(joined);
      const reader = new Reader(joined, false);
      return reader.text(joined.length);
    }
    if (major === 4) {
      const out: CborValue[] = [];
      while (!atBreak()) out.push(this.item(depth + 1));
      return out;
    }
    if (major === 5) {
      const out: Record<string, CborValue> = {};
      while (!atBreak()) this.entry(out, depth);
      return out;
    }
    throw invalid(`major type ${major} has no indefinite length`);
  }

  private simple(info: number): CborValue {
    switch (info) {
      case 20:
        return false;
      case 21:
        return true;
      case 22:
        return null;
      case 23:
        return undefined;
      case 25: {
        const at = this.offset;
        this.take(2);
        return halfToNumber(this.view.getUint16(at));
      }
      case 26: {
        const at = this.offset;
        this.take(4);
        return this.view.getFloat32(at);
      }
      case 27: {
        const at = this.offset;
        this.take(8);
        return this.view.getFloat64(at);
      }
      default:
        throw invalid(`simple value ${info} is not supported`);
    }
  }
}

/** RFC 8949 Appendix D: IEEE 754 binary16 to a number. */
function halfToNumber(half: number): number {
  const exponent = (half >> 10) & 0x1f;
  const mantissa = half & 0x3ff;
  const value =
    exponent === 0
      ? mantissa * 2 ** -24
      : exponent === 31
        ? mantissa === 0
          ? Infinity
          : NaN
        : (mantissa + 1024) * 2 ** (exponent - 25);
  return half & 0x8000 ? -value : value;
}
