import { create } from '@bufbuild/protobuf';
import { NodeProtoSchema } from 'onnx-buf';
import { describe, expect, it } from 'vitest';
import {
  GraphBuilder,
  NameGenerator,
  bypassNode,
  consumers,
  encodeModel,
  insertNodes,
  loadModel,
  mainGraph,
  opHistogram,
  opsetVersion,
  outerScopeNames,
  parameterCount,
  producers,
  removeNodes,
  replaceUses,
  sortTopologically,
  topologicalOrder,
  valueType,
  type GraphProto,
  type NodeProto,
} from '../../../compiler/onnx/index.js';
import { isOutpostError } from '../../../runtime/errors.js';
import { REAL_MODELS } from '../../helpers/models.js';
import { bitsOf, mlpModel, runOrt } from './helpers.js';
import * as ort from 'onnxruntime-node';

/**
 * x → Add(x, late) inside an If branch, where `late` is produced by a node listed AFTER the If: only the outer-scope
 * reference orders them.
 */
function ifWithOuterReference(): { g: GraphBuilder; graph: GraphProto; ifNode: NodeProto; lateNode: NodeProto } {
  const g = new GraphBuilder('outer');
  const x = g.input('x', 'float32', [2]);
  const flag = g.input('flag', 'bool', []);
  const thenBranch = g.subgraph('then');
  thenBranch.output(thenBranch.node('Add', [x, 'late']), 'float32', [2]);
  const elseBranch = g.subgraph('else');
  elseBranch.output(elseBranch.node('Neg', [x]), 'float32', [2]);
  const result = g.node('If', [flag], { then_branch: thenBranch.toGraph(), else_branch: elseBranch.toGraph() });
  g.output(result, 'float32', [2]);
  g.nodeOutputs('Mul', [x, x], ['late']);
  const graph = g.toGraph();
  return { g, graph, ifNode: graph.node[0] as NodeProto, lateNode: graph.node[1] as NodeProto };
}

describe('data flow', () => {
  it('sees outer-scope reads of subgraphs as reads of the node that holds them', () => {
    const { graph, ifNode, lateNode } = ifWithOuterReference();
    const thenBranch = ifNode.attribute.find((a) => a.name === 'then_branch')?.g;
    expect([...outerScopeNames(thenBranch as GraphProto)].sort()).toEqual(['late', 'x']);
    expect(producers(graph).get('late')).toBe(lateNode);
    expect(consumers(graph).get('late')).toEqual([ifNode]);
    expect(consumers(graph).get('x')).toEqual([ifNode, lateNode]);
  });

  it('orders producers of outer-scope values before the If that reads them, and the model then runs', async () => {
    const { g, graph, ifNode, lateNode } = ifWithOuterReference();
    expect(topologicalOrder(graph)).toEqual([lateNode, ifNode]);
    sortTopologically(graph);
    expect(graph.node).toEqual([lateNode, ifNode]);
    const bytes = encodeModel(g.build({ opsets: { '': 17 } }));
    const x = new ort.Tensor('float32', Float32Array.of(2, 3), [2]);
    const run = (flag: boolean) => runOrt(bytes, { x, flag: new ort.Tensor('bool', Uint8Array.of(flag ? 1 : 0), []) });
    expect([...((await run(true)).if as Float32Array)]).toEqual([6, 12]); // x + x*x
    expect([...((await run(false)).if as Float32Array)]).toEqual([-2, -3]);
  });

  it('keeps an already sorted graph in its own order (silero v5) and names a cycle', async () => {
    const graph = mainGraph((await loadModel(REAL_MODELS.sileroV5)).proto);
    expect(topologicalOrder(graph)).toEqual(graph.node);
    const g = new GraphBuilder('cycle');
    g.nodeOutputs('Relu', ['b'], ['a'], {}, { name: 'first' });
    g.nodeOutputs('Relu', ['a'], ['b'], {}, { name: 'second' });
    expect(() => topologicalOrder(g.toGraph())).toThrow(/cycle: first \(Relu\) → second \(Relu\)/);
  });
});

describe('editing', () => {
  it('inserts nodes after a producer, rewires its readers, and bypassing them restores the model', async () => {
    const { model, feeds } = mlpModel();
    const original = encodeModel(model);
    const graph = mainGraph(model);
    const matmul = graph.node.find((n) => n.opType === 'MatMul') as NodeProto;
    const value = matmul.output[0] as string;
    const names = new NameGenerator(model);
    const neg1 = names.value('neg');
    const neg2 = names.value('neg');
    const inserted = [
      create(NodeProtoSchema, { opType: 'Neg', input: [value], output: [neg1] }),
      create(NodeProtoSchema, { opType: 'Neg', input: [neg1], output: [neg2] }),
    ];
    insertNodes(graph, inserted, { after: matmul });
    expect(replaceUses(graph, value, neg2, { except: inserted })).toBe(1);
    expect(graph.node.indexOf(inserted[0] as NodeProto)).toBe(graph.node.indexOf(matmul) + 1);
    const edited = await runOrt(encodeModel(model), feeds());
    const reference = await runOrt(original, feeds());
    for (const [name, data] of Object.entries(reference))
      expect(bitsOf(edited[name] ?? []).equals(bitsOf(data))).toBe(true);

    bypassNode(graph, inserted[1] as NodeProto);
    bypassNode(graph, inserted[0] as NodeProto);
    expect(Buffer.from(encodeModel(model)).equals(Buffer.from(original))).toBe(true);
  });

  it('removing a node that feeds a graph output renames the replacement producer, keeping the interface', async () => {
    const g = new GraphBuilder('tail');
    const x = g.input('x', 'float32', [3]);
    const relu = g.node('Relu', [x]);
    g.output(g.nodeOutputs('Identity', [relu], ['out'])[0] as string, 'float32', [3]);
    const graph = g.toGraph();
    bypassNode(graph, graph.node[1] as NodeProto);
    expect(graph.node.map((n) => [n.opType, n.output[0]])).toEqual([['Relu', 'out']]);
    const out = await runOrt(encodeModel(g.build({ opsets: { '': 17 } })), {
      x: new ort.Tensor('float32', Float32Array.of(-1, 0, 2), [3]),
    });
    expect([...(out.out as Float32Array)]).toEqual([0, 0, 2]);
  });

  it('refuses removals that would leave dangling names', () => {
    const g = new GraphBuilder('refuse');
    const x = g.input('x', 'float32', [3]);
    g.output(g.nodeOutputs('Identity', [x], ['out'])[0] as string, 'float32', [3]);
    const used = g.node('Relu', [x]);
    g.output(g.node('Neg', [used]), 'float32', [3]);
    const graph = g.toGraph();
    const identity = graph.node[0] as NodeProto;
    // Graph input → graph output through Identity: no producer to rename, so the Identity has to stay.
    expect(() => {
      bypassNode(graph, identity);
    }).toThrow(/keep an Identity node/);
    const refusal = (() => {
      try {
        removeNodes(graph, [graph.node[1] as NodeProto]);
      } catch (error) {
        return error;
      }
      return undefined;
    })();
    expect(isOutpostError(refusal, 'INVALID_ARGUMENT')).toBe(true);
    expect((refusal as Error).message).toMatch(/output "relu" is read by Neg/);
    expect(graph.node).toHaveLength(3); // nothing changed
  });

  it('rewrites outer-scope reads inside subgraphs, but not where a subgraph defines the name itself', () => {
    const { graph, ifNode } = ifWithOuterReference();
    expect(replaceUses(graph, 'late', 'x')).toBe(1);
    const thenBranch = ifNode.attribute.find((a) => a.name === 'then_branch')?.g as GraphProto;
    expect(thenBranch.node[0]?.input).toEqual(['x', 'x']);
    // A subgraph whose own input is named like the outer value reads its input, not the outer value.
    const body = new GraphBuilder('body');
    body.input('x', 'float32', [2]);
    body.output(body.node('Relu', ['x']), 'float32', [2]);
    const host = new GraphBuilder('host');
    const x = host.input('x', 'float32', [2]);
    host.node('Relu', [x]);
    host.node('Scan', [x], { body: body.toGraph(), num_scan_inputs: 1 });
    expect(replaceUses(host.toGraph(), 'x', 'y')).toBe(2); // the two explicit inputs
    expect(body.toGraph().node[0]?.input).toEqual(['x']);
  });
});

describe('names and inspection', () => {
  it('generates names unused anywhere in the model, subgraphs included', () => {
    const { g } = ifWithOuterReference();
    const names = new NameGenerator(g.toGraph());
    expect(names.value('add')).toBe('add_1'); // "add" is taken inside the then branch
    expect(names.value('add')).toBe('add_2');
    expect(names.value('fresh')).toBe('fresh');
    expect(names.node('If')).toBe('If_1');
  });

  it('reports value types with symbolic dims, opsets, op counts and parameters', async () => {
    const { model } = mlpModel();
    const graph = mainGraph(model);
    expect(valueType(graph, 'x')).toEqual({
      name: 'x',
      kind: 'input',
      type: 'tensor',
      dtype: 'float32',
      shape: ['batch', 256],
    });
    expect(valueType(graph, 'half_bias')).toMatchObject({ kind: 'initializer', dtype: 'float16', shape: [8] });
    expect(valueType(graph, 'nothing')).toBeUndefined();
    expect(parameterCount(model)).toBe(256 * 256 + 256 + 256 * 8 + 8 + 4 + 512);
    expect(parameterCount(model, { constants: false })).toBe(256 * 256 + 256 + 256 * 8 + 8 + 4);
    expect(opHistogram(model).get('MatMul')).toBe(2);

    const legacy = (await loadModel(REAL_MODELS.sileroLegacy)).proto;
    expect(opsetVersion(legacy)).toBe(16);
    expect(opsetVersion(legacy, 'ai.onnx')).toBe(16);
    expect(opsetVersion(legacy, 'com.microsoft')).toBe(1);
    expect(opsetVersion(legacy, 'com.example')).toBeUndefined();
    expect(valueType(mainGraph(legacy), 'h')?.shape).toEqual([2, 'batch', 64]);
  });
});
