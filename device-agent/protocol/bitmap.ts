import { ProtocolError } from './errors.js';
import { MAX_BITMAP_BYTES } from './limits.js';

/**
 * GetStream block bitmaps (mqtt-based-file-delivery-in-devices, "Build a bitmap for a GetStream request"). Bit `i`
 * asks for block `o + i`. Bit order: "The first byte contains bits 7-0 (in that order), the second byte contains bits
 * 15-8, …": bit `i` is `1 << (i % 8)` of byte `⌊i / 8⌋`, least significant bit first. The guide's example, blocks 0, 1,
 * 4 and 23 after the offset, is the bytes 13 00 80.
 *
 * In CBOR the bitmap is a byte string (what FreeRTOS OTA and the AWS SDKs send). In JSON the guide says "convert the
 * bitmap to a string representing the bitmap's value in hexadecimal notation" ("0x130080") but says the same of the
 * data payload `p`, which the service actually sends, and AWS's file-streams library decodes, as base64. So JSON
 * bitmaps are written as base64, the encoding of every other byte field, and read as either: a string starting "0x"
 * whose rest is hex digits is hex, anything else base64.
 */

export function createBitmap(bits: number): Uint8Array {
  return new Uint8Array(Math.ceil(bits / 8));
}

export function setBit(bitmap: Uint8Array, bit: number): void {
  const byte = bit >> 3;
  if (!Number.isInteger(bit) || bit < 0 || byte >= bitmap.length) {
    throw new ProtocolError('PROTOCOL_BITMAP_INVALID', `bit ${bit} is outside a ${bitmap.length * 8}-bit bitmap`, {
      details: { bit, bits: bitmap.length * 8 },
    });
  }
  bitmap[byte] = (bitmap[byte] ?? 0) | (1 << (bit & 7));
}

export function clearBit(bitmap: Uint8Array, bit: number): void {
  const byte = bit >> 3;
  if (Number.isInteger(bit) && bit >= 0 && byte < bitmap.length) bitmap[byte] = (bitmap[byte] ?? 0) & ~(1 << (bit & 7));
}

/** Bits past the end are clear. */
export function testBit(bitmap: Uint8Array, bit: number): boolean {
  if (!Number.isInteger(bit) || bit < 0) return false;
  return (((bitmap[bit >> 3] ?? 0) >> (bit & 7)) & 1) === 1;
}

export function countBits(bitmap: Uint8Array): number {
  let count = 0;
  for (let byte of bitmap) {
    while (byte !== 0) {
      byte &= byte - 1;
      count++;
    }
  }
  return count;
}

/** The set bits, in increasing order. */
export function* setBits(bitmap: Uint8Array): Generator<number> {
  for (let i = 0; i < bitmap.length; i++) {
    const byte = bitmap[i] ?? 0;
    if (byte === 0) continue;
    for (let b = 0; b < 8; b++) if ((byte >> b) & 1) yield i * 8 + b;
  }
}

/**
 * The smallest (offset, bitmap) asking for exactly `blocks`: the offset is the lowest block (the guide: "specify the
 * offset … to save space in the bitmap"). Throws PROTOCOL_BITMAP_INVALID if the bitmap would exceed the service's
 * 12,287-byte limit; ask in several requests instead.
 */
export function bitmapForBlocks(blocks: Iterable<number>): { offset: number; bitmap: Uint8Array } {
  const sorted = [...new Set(blocks)].sort((a, b) => a - b);
  const first = sorted[0];
  const last = sorted[sorted.length - 1];
  if (first === undefined || last === undefined) return { offset: 0, bitmap: new Uint8Array(0) };
  if (!Number.isInteger(first) || first < 0) {
    throw new ProtocolError('PROTOCOL_BITMAP_INVALID', `block ${first} is not a block index`, {
      details: { block: first },
    });
  }
  const bitmap = createBitmap(last - first + 1);
  if (bitmap.length > MAX_BITMAP_BYTES) {
    throw new ProtocolError(
      'PROTOCOL_BITMAP_INVALID',
      `blocks ${first}–${last} need a ${bitmap.length}-byte bitmap; the service accepts at most ${MAX_BITMAP_BYTES}`,
      { details: { first, last, bytes: bitmap.length, limit: MAX_BITMAP_BYTES } },
    );
  }
  for (const block of sorted) setBit(bitmap, block - first);
  return { offset: first, bitmap };
}

/** The guide's hexadecimal form: "0x" and two hex digits per byte, first byte first ("0x130080"). */
export function bitmapToHex(bitmap: Uint8Array): string {
  return `0x${Buffer.from(bitmap).toString('hex')}`;
}

/** The JSON form written here: base64 (RFC 4648 §4, padded). */
export function bitmapToJson(bitmap: Uint8Array): string {
  return Buffer.from(bitmap).toString('base64');
}

const HEX_FORM = /^0[xX]((?:[0-9a-fA-F]{2})+)$/;

/** Reads a JSON bitmap in either form; throws PROTOCOL_BITMAP_INVALID for anything else. */
export function bitmapFromJson(text: string): Uint8Array {
  const hex = HEX_FORM.exec(text);
  if (hex?.[1] !== undefined) return new Uint8Array(Buffer.from(hex[1], 'hex'));
  const bytes = base64ToBytes(text);
  if (bytes === undefined) {
    throw new ProtocolError(
      'PROTOCOL_BITMAP_INVALID',
      `bitmap ${JSON.stringify(text.slice(0, 40))} is neither base64 nor 0x-hex`,
      {
        details: { accepted: ['base64', '0x-prefixed hex'] },
      },
    );
  }
  return bytes;
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Strict base64 (Buffer.from is lenient and would turn garbage into bytes); undefined if not base64. */
export function base64ToBytes(text: string): Uint8Array | undefined {
  if (!BASE64.test(text)) return undefined;
  return new Uint8Array(Buffer.from(text, 'base64'));
}
