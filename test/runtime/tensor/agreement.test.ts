import { describe, expect, it } from 'vitest';
import { Agreement, looksLikeClassifier } from '../../../runtime/tensor/agreement.js';

const f32 = (...v: number[]) => Float32Array.from(v);

describe('Agreement: one accumulator for the accuracy gate and the shadow comparison', () => {
  it('grades identical tensors as identical, NaN and ±Infinity at the same places included', () => {
    const a = new Agreement(true);
    const x = f32(1, NaN, -Infinity, 2, Infinity, 0.5);
    const pair = a.add(x, x.slice(), [2, 3]);
    for (const f of [pair, a.figures()]) {
      expect(f.cosine).toBe(1);
      expect(f.maxAbsError).toBe(0);
      expect(f.relativeError).toBe(0);
      expect(f.top1Agreement).toBe(1);
      expect(f.nonFiniteMismatches).toBe(0);
    }
  });

  it('makes NaN on one side only a disagreement that shows: max |Δ| and relative error Infinity, cosine falls', () => {
    const a = new Agreement(true);
    const f = a.add(f32(1, NaN, 3, 4), f32(1, 2, 3, 4), [2, 2]);
    expect(f.maxAbsError).toBe(Infinity);
    expect(f.relativeError).toBe(Infinity);
    expect(f.nonFiniteMismatches).toBe(1);
    expect(f.cosine).toBeCloseTo(0.75, 6); // finite positions agree exactly; one of four has no number
    expect(f.top1Agreement).toBe(0.5); // the row holding the NaN disagrees, whatever its argmax; the other agrees
  });

  it('counts Infinity against a number, and +Infinity against −Infinity, as mismatches', () => {
    const a = new Agreement(false);
    a.add(f32(Infinity, -Infinity, 1), f32(5, Infinity, 1), [3]);
    expect(a.nonFiniteMismatches).toBe(2);
    expect(a.maxAbsError).toBe(Infinity);
    expect(a.top1Agreement).toBeUndefined();
  });

  it('accumulates across calls and keeps per-call figures apart', () => {
    const a = new Agreement(false);
    const first = a.add(f32(1, 2), f32(1, 2), [2]);
    const second = a.add(f32(0, 1), f32(1, 0), [2]);
    expect(first.cosine).toBeCloseTo(1, 12);
    expect(second.cosine).toBe(0);
    expect(a.cosine).toBeCloseTo(5 / Math.sqrt(6 * 6), 9);
    expect(a.maxAbsError).toBe(1);
    expect(a.count).toBe(4);
  });

  it('treats tensors of different lengths, and differing strings, as disagreeing everywhere', () => {
    const a = new Agreement(false);
    const f = a.add(f32(1, 2), f32(1, 2, 3), [3]);
    expect(f.maxAbsError).toBe(Infinity);
    expect(f.cosine).toBe(0);
    const s = new Agreement(false).add(['a', 'b'], ['a', 'c'], [2]);
    expect(s.nonFiniteMismatches).toBe(1);
    expect(s.maxAbsError).toBe(Infinity);
  });

  it('ends on empty outputs with an empty class axis (a Tile by 0, a TopK with k = 0) and counts no rows', () => {
    const a = new Agreement(true);
    const f = a.add(new Float32Array(0), new Float32Array(0), [3, 0]);
    expect(f).toMatchObject({ cosine: 1, maxAbsError: 0, count: 0, top1Agreement: undefined });
    expect(a.add(new Float32Array(0), new Float32Array(0), [0, 4]).top1Agreement).toBeUndefined();
  });

  it('reads float16 and bfloat16 bit patterns as the numbers they encode', () => {
    // 0x3c00 = 1.0, 0x4000 = 2.0, 0x3c01 = 1.0009765625 (one ulp above 1), 0x7e00 = NaN
    const f = new Agreement(false).add(
      Uint16Array.from([0x3c00, 0x4000]),
      Uint16Array.from([0x3c01, 0x4000]),
      [2],
      'float16',
    );
    expect(f.maxAbsError).toBeCloseTo(2 ** -10, 12);
    const nan = new Agreement(false).add(Uint16Array.from([0x7e00]), Uint16Array.from([0x7e00]), [1], 'float16');
    expect(nan).toMatchObject({ maxAbsError: 0, nonFiniteMismatches: 0, cosine: 1 });
    // bfloat16 0x3f80 = 1.0, 0x4000 = 2.0
    expect(
      new Agreement(false).add(Uint16Array.from([0x3f80]), Uint16Array.from([0x4000]), [1], 'bfloat16').maxAbsError,
    ).toBe(1);
  });

  it('compares integer and bigint outputs by value', () => {
    const f = new Agreement(true).add(BigInt64Array.from([1n, 5n]), BigInt64Array.from([1n, 4n]), [1, 2]);
    expect(f.maxAbsError).toBe(1);
    expect(f.top1Agreement).toBe(1);
  });

  it('calls an output classifier-like when it ends in an axis of two or more classes', () => {
    expect(looksLikeClassifier([1, 10])).toBe(true);
    expect(looksLikeClassifier(['batch', 2])).toBe(true);
    expect(looksLikeClassifier([10])).toBe(false);
    expect(looksLikeClassifier([1, 1])).toBe(false);
    expect(looksLikeClassifier([1, 'n'])).toBe(false);
  });
});
