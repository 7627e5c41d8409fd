import { describe, expect, it } from 'vitest';
import { canonicalJson, prettyJson } from '../../../runtime/artifact/canonical.js';
import { isOutpostError } from '../../../runtime/errors.js';

describe('canonicalJson (RFC 8785 JCS)', () => {
  it('sorts keys at every depth and drops whitespace', () => {
    const value = { b: 1, a: [1, 'x', null, true, { d: false, c: 0.5 }], c: { z: 0.5, y: -0 } };
    expect(canonicalJson(value)).toBe('{"a":[1,"x",null,true,{"c":0.5,"d":false}],"b":1,"c":{"y":0,"z":0.5}}');
  });

  it('sorts by UTF-16 code units, not code points (RFC 8785 §3.2.3)', () => {
    // U+1F600 is the surrogate pair D83D DE00, which sorts before U+FF61 in UTF-16 though after it by code point.
    expect(canonicalJson({ '\uff61': 1, '\u{1f600}': 2, a: 3 })).toBe('{"a":3,"\u{1f600}":2,"\uff61":1}');
  });

  it('serialises numbers as ECMAScript does (RFC 8785 §3.2.2.3)', () => {
    expect(canonicalJson([1e21, 1e-7, 0.000001, 123456789012345680000, 4.5, -0])).toBe(
      '[1e+21,1e-7,0.000001,123456789012345680000,4.5,0]',
    );
  });

  it('escapes strings as JSON.stringify does', () => {
    expect(canonicalJson({ s: 'a"b\\c\n\u0001é' })).toBe('{"s":"a\\"b\\\\c\\n\\u0001é"}');
  });

  it('is independent of the input formatting', () => {
    const text = '{\n  "b": [1, 2],\n\t"a": {"y": 1, "x": 2}\n}';
    expect(canonicalJson(JSON.parse(text))).toBe('{"a":{"x":2,"y":1},"b":[1,2]}');
  });

  it('omits undefined object members, as JSON.stringify does', () => {
    expect(canonicalJson({ a: undefined, b: 1 })).toBe('{"b":1}');
  });

  it.each([
    ['NaN', { n: Number.NaN }],
    ['Infinity', [Number.POSITIVE_INFINITY]],
    ['undefined in an array', [1, undefined]],
    ['a bigint', { n: 1n }],
    ['a function', { f: () => 1 }],
    ['a Date', { d: new Date(0) }],
    ['a Map', new Map()],
  ])('refuses %s', (_what, value) => {
    expect(() => canonicalJson(value)).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
  });

  it('refuses a cycle and names where it is', () => {
    const value: Record<string, unknown> = { a: { b: [] } };
    (value.a as { b: unknown[] }).b.push(value);
    try {
      canonicalJson(value);
      expect.unreachable();
    } catch (error) {
      expect(isOutpostError(error, 'INVALID_ARGUMENT')).toBe(true);
      expect((error as Error).message).toContain('$.a.b[0]');
    }
  });
});

describe('prettyJson', () => {
  it('indents by two spaces, sorts keys, ends with a newline, and has the same canonical form', () => {
    const value = { b: [1, { d: 2, c: [] }], a: {} };
    const text = prettyJson(value);
    expect(text).toBe('{\n  "a": {},\n  "b": [\n    1,\n    {\n      "c": [],\n      "d": 2\n    }\n  ]\n}\n');
    expect(text).toBe(`${JSON.stringify(JSON.parse(text), null, 2)}\n`);
    expect(canonicalJson(JSON.parse(text))).toBe(canonicalJson(value));
  });
});
