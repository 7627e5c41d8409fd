import * as ort from 'onnxruntime-node';
import { AttributeProto_AttributeType as AttrType } from 'onnx-buf';
import { describe, expect, it } from 'vitest';
import {
  GraphBuilder,
  PRODUCER_NAME,
  attr,
  constantValue,
  encodeModel,
  makeAttribute,
  makeTensor,
  mainGraph,
  packSubByte,
  type NodeProto,
} from '../../../compiler/onnx/index.js';
import { runOrt } from './helpers.js';

describe('attributes', () => {
  it('maps JS values to attribute types, with explicit helpers for whole-number floats', () => {
    const sub = new GraphBuilder('sub').toGraph();
    const tensor = makeTensor('t', Float32Array.of(1), [1]);
    const cases: [Parameters<typeof makeAttribute>[1], AttrType][] = [
      [3, AttrType.INT],
      [3n, AttrType.INT],
      [0.5, AttrType.FLOAT],
      [attr.float(1), AttrType.FLOAT],
      ['same', AttrType.STRING],
      [[1, 2], AttrType.INTS],
      [[1n, -2n], AttrType.INTS],
      [[0.5, 1], AttrType.FLOATS],
      [attr.floats([1, 2]), AttrType.FLOATS],
      [['a', 'b'], AttrType.STRINGS],
      [tensor, AttrType.TENSOR],
      [[tensor, tensor], AttrType.TENSORS],
      [sub, AttrType.GRAPH],
      [[sub], AttrType.GRAPHS],
    ];
    for (const [i, [value, type]] of cases.entries()) expect(makeAttribute('a', value).type, `case ${i}`).toBe(type);
    expect(makeAttribute('a', attr.float(1)).f).toBe(1);
    expect(makeAttribute('a', [1n, -2n]).ints).toEqual([1n, -2n]);
    expect(new TextDecoder().decode(makeAttribute('a', 'same').s)).toBe('same');
    expect(() => makeAttribute('a', [])).toThrow(/empty list has no type/);
    expect(() => makeAttribute('a', attr.int(0.5))).toThrow(/not an integer/);
  });

  it('reads Constant nodes of every attribute form', () => {
    const g = new GraphBuilder('consts');
    g.constant(Int32Array.of(1, 2, 3), [3]);
    g.node('Constant', [], { value_float: attr.float(2) });
    g.node('Constant', [], { value_ints: [4, 5] });
    g.node('Constant', [], { value_strings: ['x', 'y'] });
    const values = g.toGraph().node.map((n: NodeProto) => constantValue(n));
    expect(values).toEqual([
      { dtype: 'int32', dims: [3], data: Int32Array.of(1, 2, 3) },
      { dtype: 'float32', dims: [], data: Float32Array.of(2) },
      { dtype: 'int64', dims: [2], data: BigInt64Array.of(4n, 5n) },
      { dtype: 'string', dims: [2], data: ['x', 'y'] },
    ]);
  });
});

describe('GraphBuilder', () => {
  it('builds the MLP from its doc comment, which onnxruntime runs', async () => {
    const g = new GraphBuilder('mlp');
    const x = g.input('x', 'float32', ['batch', 4]);
    const w = g.initializer(
      'w',
      Float32Array.from({ length: 32 }, (_, i) => i / 8),
      [4, 8],
    );
    const y = g.node('MatMul', [x, w]);
    g.output(y, 'float32', ['batch', 8]);
    const model = g.build({ opsets: { '': 17 }, producerVersion: '0.1.0', metadata: { purpose: 'test' } });
    expect(model.producerName).toBe(PRODUCER_NAME);
    expect(model.irVersion).toBe(8n); // opset 17 → IR 8 (onnx Versioning.md)
    const out = await runOrt(encodeModel(model), { x: new ort.Tensor('float32', Float32Array.of(1, 0, 0, 1), [1, 4]) });
    // Row 0 of w plus row 3: (i + 24 + i) / 8 for column i.
    expect([...(out.matmul as Float32Array)]).toEqual(Array.from({ length: 8 }, (_, i) => (2 * i + 24) / 8));
  });

  it('handles float attributes, multi-output nodes, optional inputs and If subgraphs under onnxruntime', async () => {
    const g = new GraphBuilder('kitchen');
    const x = g.input('x', 'float32', [2, 3]);
    const flag = g.input('flag', 'bool', []);
    const leaky = g.node('LeakyRelu', [x], { alpha: 0.25 });
    const gemm = g.node('Gemm', [leaky, g.initializer('eye', eye3(), [3, 3])], { alpha: attr.float(2), transB: 1 });
    const [left, right] = g.nodeOutputs('Split', [gemm, g.initializer('sizes', BigInt64Array.of(1n, 2n), [2])], 2, {
      axis: 1,
    });
    const clipped = g.node('Clip', [right as string, '', g.constant(Float32Array.of(1), [])]); // min omitted
    const thenBranch = g.subgraph('then');
    thenBranch.output(thenBranch.node('Identity', [left as string]), 'float32', [2, 1]);
    const elseBranch = g.subgraph('else');
    elseBranch.output(elseBranch.node('Neg', [left as string]), 'float32', [2, 1]);
    const chosen = g.node('If', [flag], { then_branch: thenBranch.toGraph(), else_branch: elseBranch.toGraph() });
    g.output(g.node('Concat', [chosen, clipped], { axis: -1 }), 'float32', [2, 3]);
    const bytes = encodeModel(g.build({ opsets: { '': 17 } }));

    const input = new ort.Tensor('float32', Float32Array.of(-4, 0.25, 3, 1, -1, 0.5), [2, 3]);
    const run = async (value: boolean) => [
      ...((await runOrt(bytes, { x: input, flag: new ort.Tensor('bool', Uint8Array.of(value ? 1 : 0), []) }))
        .concat as Float32Array),
    ];
    // leaky: [-1, 0.25, 3, 1, -0.25, 0.5]; gemm = 2 * leaky; split → [-2 | 0.5, 6], [2 | -0.5, 1]; clip max 1.
    expect(await run(true)).toEqual([-2, 0.5, 1, 2, -0.5, 1]);
    expect(await run(false)).toEqual([2, 0.5, 1, -2, -0.5, 1]);
  });

  it('picks the IR version element types need, refuses duplicate names, and shares names with subgraphs', () => {
    const g = new GraphBuilder('ir');
    g.initializer('q', packSubByte([1, -2, 3], 'int4'), [3], 'int4');
    expect(g.build({ opsets: { '': 17 } }).irVersion).toBe(10n); // int4 arrived in IR 10
    expect(g.build({ opsets: { '': 21 }, irVersion: 11 }).irVersion).toBe(11n);
    expect(() => g.input('q', 'float32', [1])).toThrow(/"q" is already used/);
    const sub = g.subgraph('body');
    expect(sub.node('Relu', ['q'])).toBe('relu');
    expect(g.node('Relu', ['q'])).toBe('relu_1');
    expect(mainGraph(g.build({ opsets: { '': 17 } })).node[0]?.name).toBe('Relu_1');
    expect(() => g.build({ opsets: {} })).toThrow(/at least one opset/);
  });
});

function eye3(): Float32Array {
  return Float32Array.of(1, 0, 0, 0, 1, 0, 0, 0, 1);
}
