import { describe, expect, it } from 'vitest';
import {
  MAX_BITMAP_BYTES,
  bitmapForBlocks,
  bitmapFromJson,
  bitmapToHex,
  bitmapToJson,
  clearBit,
  countBits,
  createBitmap,
  isProtocolError,
  setBit,
  setBits,
  testBit,
} from '../../../device-agent/protocol/index.js';

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  return undefined;
}

describe('GetStream bitmaps', () => {
  it("reproduces the developer guide's example: blocks 20, 21, 24, 43 → offset 20, 0x130080", () => {
    const { offset, bitmap } = bitmapForBlocks([43, 24, 20, 21, 21]);
    expect(offset).toBe(20);
    expect([...bitmap]).toEqual([0x13, 0x00, 0x80]);
    expect(bitmapToHex(bitmap)).toBe('0x130080');
    expect([...setBits(bitmapFromJson('0x130080'))]).toEqual([0, 1, 4, 23]);
  });

  it('orders bits least significant first within each byte', () => {
    const bitmap = createBitmap(17);
    expect(bitmap.length).toBe(3);
    for (const bit of [0, 7, 8, 16]) setBit(bitmap, bit);
    expect([...bitmap]).toEqual([0x81, 0x01, 0x01]);
    expect(testBit(bitmap, 7)).toBe(true);
    expect(testBit(bitmap, 6)).toBe(false);
    expect(testBit(bitmap, 24)).toBe(false); // past the end: clear
    expect(testBit(bitmap, -1)).toBe(false);
    expect(countBits(bitmap)).toBe(4);
    clearBit(bitmap, 7);
    clearBit(bitmap, 99); // past the end: nothing to clear
    expect([...setBits(bitmap)]).toEqual([0, 8, 16]);
  });

  it('handles the empty and the full cases', () => {
    expect(bitmapForBlocks([])).toEqual({ offset: 0, bitmap: new Uint8Array(0) });
    expect(countBits(createBitmap(0))).toBe(0);
    const full = bitmapForBlocks(Array.from({ length: 64 }, (_, i) => i + 5));
    expect(full.offset).toBe(5);
    expect([...full.bitmap]).toEqual(Array(8).fill(0xff));
    expect(countBits(full.bitmap)).toBe(64);
  });

  it('refuses bits outside the bitmap and bitmaps past the service limit', () => {
    expect(
      isProtocolError(
        thrown(() => setBit(createBitmap(8), 8)),
        'PROTOCOL_BITMAP_INVALID',
      ),
    ).toBe(true);
    expect(
      isProtocolError(
        thrown(() => setBit(createBitmap(8), -1)),
        'PROTOCOL_BITMAP_INVALID',
      ),
    ).toBe(true);
    expect(bitmapForBlocks([0, MAX_BITMAP_BYTES * 8 - 1]).bitmap.length).toBe(MAX_BITMAP_BYTES);
    const tooWide = thrown(() => bitmapForBlocks([0, MAX_BITMAP_BYTES * 8]));
    expect(isProtocolError(tooWide, 'PROTOCOL_BITMAP_INVALID')).toBe(true);
    expect(
      isProtocolError(
        thrown(() => bitmapForBlocks([-1, 2])),
        'PROTOCOL_BITMAP_INVALID',
      ),
    ).toBe(true);
  });

  it('writes JSON bitmaps as base64 and reads base64 or 0x-hex', () => {
    const bitmap = Uint8Array.of(0xff, 0x00, 0x7f);
    expect(bitmapToJson(bitmap)).toBe('/wB/');
    expect([...bitmapFromJson('/wB/')]).toEqual([0xff, 0x00, 0x7f]);
    expect([...bitmapFromJson('0XFF007F')]).toEqual([0xff, 0x00, 0x7f]);
    expect([...bitmapFromJson('')]).toEqual([]);
    // "0xzz" would be valid base64: only "0x" followed by whole hex bytes is read as hex (bitmap.ts says so).
    expect([...bitmapFromJson('0xzz')]).toEqual([0xd3, 0x1c, 0xf3]);
    for (const bad of ['0x1', 'not base64!', 'abc', '0x12=']) {
      expect(
        isProtocolError(
          thrown(() => bitmapFromJson(bad)),
          'PROTOCOL_BITMAP_INVALID',
        ),
      ).toBe(true);
    }
  });
});
