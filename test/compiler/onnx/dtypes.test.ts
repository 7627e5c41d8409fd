import { create, isMessage } from '@bufbuild/protobuf';
import { TensorProtoSchema, type TensorProto } from 'onnx-buf';
import { describe, expect, it } from 'vitest';
import {
  GraphBuilder,
  SUB_BYTE_DTYPES,
  arrayToBytes,
  attr,
  decodeModel,
  encodeModel,
  float4e2m1ToFloat32,
  fromBfloat16Bits,
  fromFloat16Bits,
  isSubByte,
  makeTensor,
  packSubByte,
  tensorBytes,
  tensorToArray,
  unpackSubByte,
  type TensorValue,
} from '../../../compiler/onnx/index.js';
import { DTYPES, DTYPE_NAMES, type DType, type TensorData } from '../../../runtime/tensor/dtype.js';
import { prng, runOrt } from './helpers.js';

const DIMS = [3, 5]; // 15 elements: odd, so packed types end in a padded byte
const COUNT = 15;

function randomBits(count: number, bits: number, seed: number): number[] {
  const random = prng(seed);
  return Array.from({ length: count }, () => Math.floor(random() * 2 ** bits));
}

function bigRandom(random: () => number): bigint {
  const hi = BigInt(Math.floor(random() * 2 ** 32));
  const lo = BigInt(Math.floor(random() * 2 ** 32));
  return (hi << 32n) | lo;
}

/** Deterministic data covering each type's range (and a few edge values). */
function sample(dtype: DType, seed = 11): TensorData {
  const random = prng(seed);
  const bits = (b: number) => randomBits(COUNT, b, seed);
  switch (dtype) {
    case 'float32':
      return Float32Array.from({ length: COUNT }, (_, i) => (i === 0 ? -0 : i === 1 ? 1e-40 : (random() - 0.5) * 1e6));
    case 'float64':
      return Float64Array.from({ length: COUNT }, (_, i) => (i === 0 ? -0 : (random() - 0.5) * 1e300));
    case 'complex64':
      return Float32Array.from({ length: COUNT * 2 }, () => random() - 0.5);
    case 'complex128':
      return Float64Array.from({ length: COUNT * 2 }, () => random() - 0.5);
    case 'int8':
      return Int8Array.from(bits(8));
    case 'int16':
      return Int16Array.from(bits(16));
    case 'int32':
      return Int32Array.from(bits(32));
    case 'uint16':
    case 'float16':
    case 'bfloat16':
      return Uint16Array.from(bits(16));
    case 'uint32':
      return Uint32Array.from(bits(32));
    case 'int64':
      return BigInt64Array.from({ length: COUNT }, () => BigInt.asIntN(64, bigRandom(random)));
    case 'uint64':
      return BigUint64Array.from({ length: COUNT }, () => bigRandom(random));
    case 'string':
      return Array.from(
        { length: COUNT },
        (_, i) => ['', 'a', 'ünïcödé', 'emoji 🎉', 'x'.repeat(300)][i % 5] as string,
      );
    case 'bool':
      return Uint8Array.from(bits(1));
    default:
      if (isSubByte(dtype)) return packSubByte(bits(DTYPES[dtype].bits), dtype);
      return Uint8Array.from(bits(8)); // uint8 and the float8 family
  }
}

/** Reference float8 decoding (OCP FP8 spec; onnx docs/Float8.md), independent of the code under test. */
function float8(byte: number, e: number, m: number, bias: number, kind: 'fn' | 'fnuz' | 'ieee'): number {
  const sign = byte >> 7 ? -1 : 1;
  const exponent = (byte >> m) & ((1 << e) - 1);
  const mantissa = byte & ((1 << m) - 1);
  if (kind === 'fnuz' && byte === 0x80) return NaN;
  if (kind === 'fn' && (byte & 0x7f) === 0x7f) return NaN;
  if (kind === 'ieee' && exponent === (1 << e) - 1) return mantissa === 0 ? sign * Infinity : NaN;
  if (exponent === 0) return sign * mantissa * 2 ** (1 - bias - m);
  return sign * (1 + mantissa / 2 ** m) * 2 ** (exponent - bias);
}

/** What ONNX Runtime's Cast(to=FLOAT) must produce from `data`, or undefined when it has no such kernel. */
function asFloats(dtype: DType, data: TensorData): number[] | undefined {
  if (Array.isArray(data)) return undefined;
  const bytes = [...new Uint8Array(data.buffer, data.byteOffset, data.byteLength)];
  switch (dtype) {
    case 'string':
    case 'complex64':
    case 'complex128':
    case 'float4e2m1':
      return undefined;
    case 'float16':
      return [...(data as Uint16Array)].map(fromFloat16Bits);
    case 'bfloat16':
      return [...(data as Uint16Array)].map(fromBfloat16Bits);
    case 'float8e4m3fn':
      return bytes.map((b) => float8(b, 4, 3, 7, 'fn'));
    case 'float8e4m3fnuz':
      return bytes.map((b) => float8(b, 4, 3, 8, 'fnuz'));
    case 'float8e5m2':
      return bytes.map((b) => float8(b, 5, 2, 15, 'ieee'));
    case 'float8e5m2fnuz':
      return bytes.map((b) => float8(b, 5, 2, 16, 'fnuz'));
    case 'float8e8m0':
      return bytes.map((b) => (b === 0xff ? NaN : 2 ** (b - 127)));
    default:
      if (isSubByte(dtype)) return [...unpackSubByte(data as Uint8Array, dtype, COUNT)];
      return Array.from(data as ArrayLike<number | bigint>, (v) => Math.fround(Number(v)));
  }
}

/** The same values as onnx.proto's typed repeated fields hold them (what older exporters write). */
function typedFieldTensor(dtype: DType, data: TensorData): TensorProto {
  const tensor = create(TensorProtoSchema, { name: 'w', dataType: DTYPES[dtype].onnx, dims: DIMS.map(BigInt) });
  if (Array.isArray(data)) tensor.stringData = data.map((s) => new TextEncoder().encode(s));
  else if (dtype === 'float32' || dtype === 'complex64') tensor.floatData = [...(data as Float32Array)];
  else if (dtype === 'float64' || dtype === 'complex128') tensor.doubleData = [...(data as Float64Array)];
  else if (dtype === 'int64') tensor.int64Data = [...(data as BigInt64Array)];
  else if (dtype === 'uint64') tensor.uint64Data = [...(data as BigUint64Array)];
  else if (dtype === 'uint32') tensor.uint64Data = [...(data as Uint32Array)].map(BigInt);
  else tensor.int32Data = Array.from(data as ArrayLike<number>);
  return tensor;
}

/** w → Identity → y (where ORT's JS API has the type) and w → Cast(FLOAT) → f (where ORT has the kernel). */
function modelFor(dtype: DType, w: TensorProto | TensorData): Uint8Array {
  const g = new GraphBuilder(`dtype_${dtype}`);
  if (isMessage(w, TensorProtoSchema)) g.toGraph().initializer.push(w);
  else g.initializer('w', w, DIMS, dtype);
  if (identityRuns(dtype)) g.output(g.node('Identity', ['w']), dtype, DIMS);
  if (asFloats(dtype, sample(dtype)) !== undefined)
    g.output(g.node('Cast', ['w'], { to: attr.int(1) }), 'float32', DIMS);
  return encodeModel(g.build({ opsets: { '': 25 } }));
}

function identityRuns(dtype: DType): boolean {
  // ORT's JS API lacks bfloat16/float8/complex; its CPU Identity has no int4/uint4/int2/uint2 kernel.
  return DTYPES[dtype].ort && !isSubByte(dtype);
}

describe.each(DTYPE_NAMES.map((dtype) => ({ dtype })))('dtype $dtype', ({ dtype }) => {
  const data = sample(dtype);

  it('round-trips through raw_data and protobuf', () => {
    const bytes = modelFor(dtype, data);
    const initializer = decodeModel(bytes).proto.graph?.initializer[0];
    expect(initializer).toBeDefined();
    const value: TensorValue = tensorToArray(initializer as TensorProto);
    expect(value.dtype).toBe(dtype);
    expect(value.dims).toEqual(DIMS);
    expect(value.data).toEqual(data);
    expect(value.data.constructor).toBe(data.constructor);
  });

  it('reads the typed repeated fields the same as raw_data', () => {
    const typed = typedFieldTensor(dtype, data);
    const raw = makeTensor('w', data, DIMS, dtype);
    expect(tensorToArray(typed)).toEqual(tensorToArray(raw));
    if (dtype !== 'string') expect(Buffer.from(tensorBytes(typed)).equals(Buffer.from(tensorBytes(raw)))).toBe(true);
  });

  const expectedFloats = asFloats(dtype, data);
  it.runIf(identityRuns(dtype) || expectedFloats !== undefined)('gives onnxruntime the same values', async () => {
    // ORT 1.30 rejects float8e8m0 held in int32_data ("Unhandled TensorProto_DataType (24)"); raw_data works.
    const forms = dtype === 'float8e8m0' ? (['raw'] as const) : (['raw', 'typed'] as const);
    for (const form of forms) {
      const outputs = await runOrt(modelFor(dtype, form === 'raw' ? data : typedFieldTensor(dtype, data)), {});
      if (identityRuns(dtype)) expect(outputs.identity, `${form} Identity`).toEqual(data);
      if (expectedFloats !== undefined) {
        expect([...(outputs.cast as Float32Array)], `${form} Cast`).toEqual(expectedFloats.map(Math.fround));
      }
    }
  });
});

describe('sub-byte packing', () => {
  it.each(SUB_BYTE_DTYPES.map((dtype) => ({ dtype })))(
    '$dtype packs little-end first and unpacks back',
    ({ dtype }) => {
      const bits = DTYPES[dtype].bits;
      const signed = dtype === 'int4' || dtype === 'int2';
      const values = Array.from({ length: 7 }, (_, i) => (signed ? (i % 2 ** bits) - 2 ** (bits - 1) : i % 2 ** bits));
      const packed = packSubByte(values, dtype);
      expect(packed.length).toBe(Math.ceil((7 * bits) / 8));
      expect([...unpackSubByte(packed, dtype, 7)]).toEqual(values);
    },
  );

  it('int4 layout: first element in the low nibble (onnx.proto raw_data)', () => {
    expect([...new Uint8Array(packSubByte([1, -1, 7], 'int4').buffer)]).toEqual([0xf1, 0x07]);
    expect([...new Uint8Array(packSubByte([1, 2, 3, 0, 1], 'uint2').buffer)]).toEqual([0b00111001, 0b01]);
  });

  it('decodes float4e2m1 codes', () => {
    const packed = packSubByte([0, 1, 2, 7, 8, 9, 15], 'float4e2m1') as Uint8Array;
    expect([...float4e2m1ToFloat32(packed, 7)]).toEqual([0, 0.5, 1, 6, -0, -0.5, -6]);
  });
});

describe('tensor writing', () => {
  it('normalises bool to 0/1 and refuses arrays of the wrong type or length', () => {
    expect([...arrayToBytes('bool', Uint8Array.of(0, 2, 255))]).toEqual([0, 1, 1]);
    expect(() => makeTensor('t', new Float32Array(3), [3], 'float64')).toThrow(/float64 data must be a Float64Array/);
    expect(() => makeTensor('t', new Float32Array(3), [2, 2])).toThrow(/need an array of 4, got 3/);
    expect(() => makeTensor('t', new Float32Array(3), [-3])).toThrow(/non-negative integers/);
  });

  it('reports a tensor whose typed field has the wrong number of values', () => {
    const tensor = create(TensorProtoSchema, { name: 'bad', dataType: 1, dims: [4n], floatData: [1, 2] });
    expect(() => tensorToArray(tensor)).toThrow(/tensor "bad" .* needs 4 values in float_data, found 2/);
  });
});
