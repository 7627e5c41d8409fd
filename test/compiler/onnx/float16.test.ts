import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import {
  GraphBuilder,
  attr,
  bfloat16ToFloat32,
  encodeModel,
  float16ToFloat32,
  float32ToBfloat16,
  float32ToFloat16,
  fromFloat16Bits,
  toBfloat16Bits,
  toFloat16Bits,
} from '../../../compiler/onnx/index.js';
import { prng, runOrt } from './helpers.js';

/** ONNX TensorProto.DataType numbers for Cast's `to`. */
const FLOAT = 1;
const FLOAT16 = 10;
const BFLOAT16 = 16;

/** x (float32) → Cast(to) → Cast(FLOAT): ONNX Runtime's own rounding, as the reference. */
async function ortRoundTrip(values: Float32Array, to: number): Promise<Float32Array> {
  const g = new GraphBuilder('cast');
  const x = g.input('x', 'float32', [values.length]);
  const narrowed = g.node('Cast', [x], { to: attr.int(to) });
  g.output(g.node('Cast', [narrowed], { to: attr.int(FLOAT) }), 'float32', [values.length]);
  const out = await runOrt(encodeModel(g.build({ opsets: { '': 21 } })), {
    x: new ort.Tensor('float32', values, [values.length]),
  });
  return out.cast_1 as Float32Array;
}

/** Random float32 bit patterns (every class: normals, subnormals, Inf, NaN) plus rounding edge cases. */
function testValues(): Float32Array {
  const random = prng(42);
  const bits = Uint32Array.from({ length: 200_000 }, () => Math.floor(random() * 2 ** 32));
  const edges = [
    0,
    -0,
    1,
    -1,
    65504,
    65519.99,
    65520,
    -65520,
    1e-8,
    2 ** -24,
    2 ** -25,
    2 ** -25 * 1.0000001,
    2 ** -14,
    2 ** -14 - 2 ** -25,
    1 + 2 ** -11,
    1 + 3 * 2 ** -11,
    1 + 2 ** -8,
    1 + 3 * 2 ** -8,
    3.3895313892515355e38,
    Infinity,
    -Infinity,
    NaN,
  ];
  const values = new Float32Array(bits.buffer);
  values.set(edges);
  return values;
}

function sameBitsOrBothNaN(actual: Float32Array, expected: Float32Array): number {
  const a = new Uint32Array(actual.buffer, actual.byteOffset, actual.length);
  const e = new Uint32Array(expected.buffer, expected.byteOffset, expected.length);
  let mismatches = 0;
  for (let i = 0; i < a.length; i++) {
    const bothNaN = Number.isNaN(actual[i]) && Number.isNaN(expected[i]);
    if (a[i] !== e[i] && !bothNaN) mismatches += 1;
  }
  return mismatches;
}

describe('float16', () => {
  it('rounds float32 → float16 exactly as onnxruntime Cast does (round to nearest even)', async () => {
    const values = testValues();
    const ours = float16ToFloat32(float32ToFloat16(values));
    expect(sameBitsOrBothNaN(ours, await ortRoundTrip(values, FLOAT16))).toBe(0);
  });

  it('widens every one of the 65536 half patterns exactly, and narrows them back unchanged', () => {
    const all = Uint16Array.from({ length: 0x10000 }, (_, i) => i);
    const widened = float16ToFloat32(all);
    const back = float32ToFloat16(widened);
    for (let h = 0; h < 0x10000; h++) {
      const isNaN = (h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0;
      if (isNaN) expect(Number.isNaN(widened[h])).toBe(true);
      else expect(back[h], `half 0x${h.toString(16)}`).toBe(h);
    }
  });

  it('handles the documented edge cases', () => {
    expect(toFloat16Bits(1 + 2 ** -11)).toBe(0x3c00); // tie → even (1.0)
    expect(toFloat16Bits(1 + 3 * 2 ** -11)).toBe(0x3c02); // tie → even (up)
    expect(toFloat16Bits(65519.99)).toBe(0x7bff); // largest finite half
    expect(toFloat16Bits(65520)).toBe(0x7c00); // rounds to Inf
    expect(toFloat16Bits(2 ** -25)).toBe(0); // tie between 0 and the smallest subnormal → 0
    expect(toFloat16Bits(-(2 ** -24))).toBe(0x8001);
    expect(toFloat16Bits(-0)).toBe(0x8000);
    expect(Number.isNaN(fromFloat16Bits(toFloat16Bits(NaN)))).toBe(true);
    expect(fromFloat16Bits(0x3555)).toBeCloseTo(1 / 3, 3); // atol 5e-4: half has 11 significant bits
  });

  it('writes into a caller-supplied buffer and refuses a short one', () => {
    const out = new Uint16Array(4);
    expect(float32ToFloat16(Float32Array.of(1, 2), out)).toBe(out);
    expect([...out]).toEqual([0x3c00, 0x4000, 0, 0]);
    expect(() => float32ToFloat16(new Float32Array(3), new Uint16Array(2))).toThrow(RangeError);
  });
});

describe('bfloat16', () => {
  it('rounds float32 → bfloat16 exactly as onnxruntime Cast does', async () => {
    const values = testValues();
    const ours = bfloat16ToFloat32(float32ToBfloat16(values));
    expect(sameBitsOrBothNaN(ours, await ortRoundTrip(values, BFLOAT16))).toBe(0);
  });

  it('is the top half of the float32 when exact, and rounds ties to even', () => {
    expect(toBfloat16Bits(1)).toBe(0x3f80);
    expect(toBfloat16Bits(1 + 2 ** -8)).toBe(0x3f80); // tie → even
    expect(toBfloat16Bits(1 + 3 * 2 ** -8)).toBe(0x3f82); // tie → even (up)
    expect(toBfloat16Bits(3.4028234663852886e38)).toBe(0x7f80); // max float rounds to Inf
    expect(toBfloat16Bits(NaN) & 0x7fc0).toBe(0x7fc0); // stays a quiet NaN
    const all = Uint16Array.from({ length: 0x10000 }, (_, i) => i);
    const back = float32ToBfloat16(bfloat16ToFloat32(all));
    expect(back).toEqual(all.map((b) => ((b & 0x7f80) === 0x7f80 && (b & 0x7f) !== 0 ? b | 0x40 : b)));
  });
});
