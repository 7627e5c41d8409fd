import { describe, expect, it } from 'vitest';
import { InputValidator, bindingsFromShapes, concreteShape } from '../../runtime/model/validate.js';
import type { TensorSpec } from '../../runtime/artifact/manifest.js';
import { isOutpostError, type ErrorCode } from '../../runtime/errors.js';

const specs: TensorSpec[] = [
  { name: 'image', dtype: 'float32', shape: ['batch', 3, 4, 4] },
  { name: 'mask', dtype: 'bool', shape: ['batch', 'seq'] },
];

function codeOf(fn: () => unknown): ErrorCode | undefined {
  try {
    fn();
  } catch (error) {
    if (isOutpostError(error)) return error.code;
    throw error;
  }
  return undefined;
}

const image = (batch: number) => ({ data: new Float32Array(batch * 48), dims: [batch, 3, 4, 4] });
const mask = (batch: number, seq: number) => ({
  data: new Uint8Array(batch * seq),
  dims: [batch, seq],
  type: 'bool' as const,
});

describe('InputValidator', () => {
  const validator = new InputValidator(specs);

  it('accepts well-formed feeds with symbols bound per call', () => {
    expect(codeOf(() => validator.check({ image: image(2), mask: mask(2, 7) }))).toBeUndefined();
    expect(codeOf(() => validator.check({ image: image(5), mask: mask(5, 1) }))).toBeUndefined();
  });

  it('names a missing input', () => {
    expect(codeOf(() => validator.check({ image: image(1) }))).toBe('INPUT_MISSING');
  });

  it('names an unknown input and lists the real ones', () => {
    try {
      validator.check({ image: image(1), mask: mask(1, 1), extra: image(1) });
      expect.unreachable();
    } catch (error) {
      expect(isOutpostError(error, 'INPUT_NAME_UNKNOWN')).toBe(true);
      expect((error as Error).message).toContain('"extra"');
      expect((error as Error).message).toContain('"image", "mask"');
    }
  });

  it('rejects a wrong dtype, by declared type or by array type', () => {
    expect(codeOf(() => validator.check({ image: { ...image(1), type: 'float64' }, mask: mask(1, 1) }))).toBe(
      'INPUT_DTYPE_MISMATCH',
    );
    expect(
      codeOf(() => validator.check({ image: { data: new Float64Array(48), dims: [1, 3, 4, 4] }, mask: mask(1, 1) })),
    ).toBe('INPUT_DTYPE_MISMATCH');
  });

  it('rejects wrong rank, wrong fixed dims, inconsistent symbols and wrong element counts', () => {
    expect(
      codeOf(() => validator.check({ image: { data: new Float32Array(48), dims: [3, 4, 4] }, mask: mask(1, 1) })),
    ).toBe('INPUT_SHAPE_MISMATCH');
    expect(
      codeOf(() => validator.check({ image: { data: new Float32Array(64), dims: [1, 4, 4, 4] }, mask: mask(1, 1) })),
    ).toBe('INPUT_SHAPE_MISMATCH');
    expect(codeOf(() => validator.check({ image: image(2), mask: mask(3, 1) }))).toBe('INPUT_SHAPE_MISMATCH');
    expect(
      codeOf(() => validator.check({ image: { data: new Float32Array(47), dims: [1, 3, 4, 4] }, mask: mask(1, 1) })),
    ).toBe('INPUT_SHAPE_MISMATCH');
  });

  it('error messages name the input, the expected and the actual shape', () => {
    try {
      validator.check({ image: { data: new Float32Array(64), dims: [1, 4, 4, 4] }, mask: mask(1, 1) });
    } catch (error) {
      expect((error as Error).message).toMatch(/"image".*\[1, 4, 4, 4\].*\[batch, 3, 4, 4\]/);
    }
  });

  it('bound symbols become fixed sizes', () => {
    const bound = new InputValidator(specs, { batch: 1 });
    expect(codeOf(() => bound.check({ image: image(1), mask: mask(1, 9) }))).toBeUndefined();
    expect(codeOf(() => bound.check({ image: image(2), mask: mask(2, 9) }))).toBe('INPUT_SHAPE_MISMATCH');
  });
});

describe('symbolic dimension binding', () => {
  it('derives bindings from full input shapes', () => {
    expect(bindingsFromShapes(specs, { image: [4, 3, 4, 4], mask: [4, 16] })).toEqual({ batch: 4, seq: 16 });
  });

  it('refuses shapes that contradict fixed dims, ranks or each other', () => {
    expect(codeOf(() => bindingsFromShapes(specs, { image: [1, 3, 5, 4] }))).toBe('INPUT_SHAPE_MISMATCH');
    expect(codeOf(() => bindingsFromShapes(specs, { image: [1, 3, 4] }))).toBe('INPUT_SHAPE_MISMATCH');
    expect(codeOf(() => bindingsFromShapes(specs, { image: [1, 3, 4, 4], mask: [2, 3] }))).toBe('INPUT_SHAPE_MISMATCH');
    expect(codeOf(() => bindingsFromShapes(specs, { nope: [1] }))).toBe('INPUT_NAME_UNKNOWN');
  });

  it('defaults batch-like symbols to 1 and names any other unbound symbol', () => {
    expect(concreteShape(specs[0] as TensorSpec)).toEqual([1, 3, 4, 4]);
    try {
      concreteShape(specs[1] as TensorSpec);
      expect.unreachable();
    } catch (error) {
      expect(isOutpostError(error, 'SYMBOLIC_DIM_UNBOUND')).toBe(true);
      expect((error as Error).message).toContain('"seq"');
      expect((error as Error).message).toContain('--input-shape mask=');
    }
    expect(concreteShape(specs[1] as TensorSpec, { seq: 8 })).toEqual([1, 8]);
  });
});
