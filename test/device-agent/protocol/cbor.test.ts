import { describe, expect, it } from 'vitest';
import { type CborValue, decodeCbor, encodeCbor, isProtocolError } from '../../../device-agent/protocol/index.js';

const hex = (text: string): Uint8Array => Uint8Array.from(Buffer.from(text, 'hex'));
const toHex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  return undefined;
}

describe('CBOR subset', () => {
  // RFC 8949 Appendix A, "Examples of Encoded CBOR Data Items".
  it.each([
    [0, '00'],
    [23, '17'],
    [24, '1818'],
    [100, '1864'],
    [1000, '1903e8'],
    [1_000_000, '1a000f4240'],
    [1_000_000_000_000, '1b000000e8d4a51000'],
    [-1, '20'],
    [-1000, '3903e7'],
    [1.1, 'fb3ff199999999999a'],
    [false, 'f4'],
    [true, 'f5'],
    [null, 'f6'],
    ['a', '6161'],
    ['\u00fc', '62c3bc'],
    [[1, [2, 3], [4, 5]], '8301820203820405'],
    [{ a: 1, b: [2, 3] }, 'a26161016162820203'],
  ] as [CborValue, string][])('%j ↔ %s', (value, encoded) => {
    expect(toHex(encodeCbor(value))).toBe(encoded);
    expect(decodeCbor(hex(encoded))).toEqual(value);
  });

  it('encodes and decodes byte strings', () => {
    expect(toHex(encodeCbor(Uint8Array.of(1, 2, 3, 4)))).toBe('4401020304');
    expect(decodeCbor(hex('4401020304'))).toEqual(Uint8Array.of(1, 2, 3, 4));
  });

  it('decodes indefinite lengths and the other float widths (RFC 8949 Appendix A)', () => {
    expect(decodeCbor(hex('5f42010243030405ff'))).toEqual(Uint8Array.of(1, 2, 3, 4, 5));
    expect(decodeCbor(hex('7f657374726561646d696e67ff'))).toBe('streaming');
    expect(decodeCbor(hex('9f018202039f0405ffff'))).toEqual([1, [2, 3], [4, 5]]);
    expect(decodeCbor(hex('bf61610161629f0203ffff'))).toEqual({ a: 1, b: [2, 3] });
    expect(decodeCbor(hex('f93c00'))).toBe(1);
    expect(decodeCbor(hex('f9c400'))).toBe(-4);
    expect(decodeCbor(hex('fa47c35000'))).toBe(100_000);
    expect(decodeCbor(hex('f97c00'))).toBe(Infinity);
  });

  it('leaves out undefined map values, as JSON does', () => {
    expect(decodeCbor(encodeCbor({ a: 1, b: undefined }))).toEqual({ a: 1 });
  });

  it.each([
    ['truncated', '1a000f42'],
    ['trailing bytes', '0000'],
    ['a length past the end', '5a00010000'],
    ['an array count past the end', '9b00000000ffffffff'],
    ['a tag', 'c11a514b67b0'],
    ['a non-text key', 'a10102'],
    ['a duplicate key', 'a2616101616102'],
    ['invalid UTF-8', '62c328'],
    ['an integer beyond 2^53', '1bffffffffffffffff'],
    ['a lone break', 'ff'],
    ['an unterminated indefinite map', 'bf616101'],
    ['a mixed indefinite string', '5f6161ff'],
    ['reserved additional info', '1c'],
    ['deep nesting', '81'.repeat(40) + '00'],
  ])('refuses %s with PROTOCOL_CBOR_INVALID', (_what, encoded) => {
    expect(
      isProtocolError(
        thrown(() => decodeCbor(hex(encoded))),
        'PROTOCOL_CBOR_INVALID',
      ),
    ).toBe(true);
  });

  it('does not let a map key reach the prototype', () => {
    const decoded = decodeCbor(encodeCbor({ ['__proto__']: 1 })) as Record<string, unknown>;
    expect(Object.getPrototypeOf(decoded)).toBe(Object.prototype);
  });
});
