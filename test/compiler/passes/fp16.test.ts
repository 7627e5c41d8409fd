import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as ort from 'onnxruntime-node';
import {
  GraphBuilder,
  asOnnxModel,
  attr,
  cloneModel,
  loadModel,
  mainGraph,
  valueTypes,
  type OnnxModel,
} from '../../../compiler/onnx/index.js';
import { FP16_BLOCK_LIST } from '../../../compiler/passes/fp16-plan.js';
import { simulateFloat16 } from '../../../compiler/passes/fp16-simulate.js';
import { convertModelToFloat16 } from '../../../compiler/passes/fp16.js';
import { inferValueTypes } from '../../../compiler/passes/shapes.js';
import { dtypeFromOnnx } from '../../../runtime/tensor/dtype.js';
import { allClose } from '../../../runtime/tensor/tensor.js';
import { buildCnn, buildMlp } from '../../../models/samples.js';
import { suiteTmpDir } from '../../helpers/tmp.js';
import { OCR_MODELS, cosine, floatFeed, floats, passContext, randomFloats, run } from '../../helpers/pass-runs.js';

/** The accuracy bar for fp16 against fp32 (cosine over each output), on CPU and in the fp16-storage simulation. */
const MIN_COSINE = 0.999;

let workDir: string;
let dispose: () => Promise<void>;
beforeAll(async () => ({ dir: workDir, dispose } = await suiteTmpDir('outpost-fp16-')));
afterAll(() => dispose());

async function toHalf(model: OnnxModel, options?: Parameters<typeof convertModelToFloat16>[2]) {
  const context = passContext('cuda:sm_87', workDir);
  const result = await convertModelToFloat16(model, context, options);
  return { ...result, report: context.report };
}

/** Element type each node computes in: the type of its first float input, as ORT infers it on the result. */
async function computeTypes(model: OnnxModel): Promise<Map<string, string>> {
  const inferred = await inferValueTypes(model, workDir);
  const declared = valueTypes(mainGraph(model.proto));
  const typeOf = (n: string) => inferred.get(n)?.dtype ?? declared.get(n)?.dtype;
  const result = new Map<string, string>();
  for (const node of mainGraph(model.proto).node) {
    const float = node.input.map(typeOf).find((t) => t === 'float16' || t === 'float32');
    if (float !== undefined && node.opType !== 'Cast') result.set(node.name, float);
  }
  return result;
}

/** Every value_info entry agrees with what ORT infers for the converted model. */
async function expectConsistentValueInfo(model: OnnxModel): Promise<void> {
  const inferred = await inferValueTypes(model, workDir);
  for (const info of mainGraph(model.proto).valueInfo) {
    const declared = info.type?.value.case === 'tensorType' ? dtypeFromOnnx(info.type.value.value.elemType) : undefined;
    expect(declared, info.name).toBe(inferred.get(info.name)?.dtype);
  }
}

async function expectCloseOnCpu(original: OnnxModel, half: OnnxModel, feeds: Record<string, ort.Tensor>) {
  const simulated = await simulateFloat16(cloneModel(original), passContext('cuda', workDir));
  const [ref, cpu, sim] = [await run(original, feeds), await run(half, feeds), await run(simulated, feeds, 'disabled')];
  for (const name of Object.keys(ref)) {
    expect(cpu[name]?.type, name).toBe('float32'); // outputs stay float32
    expect(cosine(floats(cpu, name), floats(ref, name)), `${name} fp16 on CPU`).toBeGreaterThanOrEqual(MIN_COSINE);
    expect(cosine(floats(sim, name), floats(ref, name)), `${name} simulated`).toBeGreaterThanOrEqual(MIN_COSINE);
    // fp16 keeps ~3 significant digits: within 1e-2 relative of values of order one.
    expect(allClose(floats(sim, name), floats(ref, name), 1e-2, 1e-2).ok, `${name} simulated allClose`).toBe(true);
  }
}

describe('convertToFloat16', () => {
  it('converts the CNN: fp16 weights and compute, float32 at the edges through Casts', async () => {
    const original = asOnnxModel(buildCnn().proto);
    const { model, convertedNodes, castsAdded } = await toHalf(cloneModel(original));
    const graph = mainGraph(model.proto);
    expect(new Set(graph.initializer.map((t) => t.dataType))).toEqual(new Set([10])); // FLOAT16
    expect(valueTypes(graph).get('image')?.dtype).toBe('float32');
    expect(valueTypes(graph).get('logits')?.dtype).toBe('float32');
    expect([convertedNodes, castsAdded]).toEqual([11, 2]);
    expect(graph.node[0]).toMatchObject({ opType: 'Cast', input: ['image'] });
    expect(graph.node.at(-1)).toMatchObject({ opType: 'Cast', output: ['logits'] });
    expect(new Set((await computeTypes(model)).values())).toEqual(new Set(['float16']));
    await expectConsistentValueInfo(model);
    await expectCloseOnCpu(original, model, { image: floatFeed([2, 3, 64, 64], 1) });
  });

  it('meets the bar on the MLP and on PaddleOCR’s direction classifier', async () => {
    const mlp = asOnnxModel(buildMlp().proto);
    await expectCloseOnCpu(mlp, (await toHalf(cloneModel(mlp))).model, { x: floatFeed([8, 16], 2) });
    const cls = await loadModel(OCR_MODELS.cls);
    const half = await toHalf(cloneModel(cls));
    expect(half.report.excludedNodes).toEqual([]);
    await expectConsistentValueInfo(half.model);
    await expectCloseOnCpu(cls, half.model, { x: floatFeed([2, 3, 48, 192], 3) });
  });

  it('keeps block-listed ops in float32 with Casts around them and reports why', async () => {
    const g = new GraphBuilder('blocked');
    const x = g.input('x', 'float32', [1, 4, 8, 8]);
    const w = g.initializer('w', randomFloats(4 * 4 * 9, 4, 0.2), [4, 4, 3, 3]);
    const conv = g.node('Conv', [x, w], { kernel_shape: [3, 3], pads: [1, 1, 1, 1] }, { name: 'conv' });
    const scales = g.initializer('scales', Float32Array.of(1, 1, 2, 2), [4]);
    const up = g.node('Resize', [conv, '', scales], { mode: 'nearest' }, { name: 'resize' });
    const sum = g.node(
      'ReduceSum',
      [g.node('Relu', [up], {}, { name: 'relu' }), g.initializer('axes', BigInt64Array.of(1n), [1])],
      {},
      { name: 'sum' },
    );
    g.output(g.node('Sigmoid', [sum], {}, { name: 'sigmoid' }), 'float32', [1, 1, 16, 16]);
    const original = asOnnxModel(g.build({ opsets: { '': 17 } }));
    const { model, report } = await toHalf(cloneModel(original), { blockNodes: ['sigmoid'] });
    expect(FP16_BLOCK_LIST.Resize).toMatch(/onnxconverter-common/);
    expect(FP16_BLOCK_LIST.ReduceSum).toMatch(/unbounded accumulation/);
    expect(report.excludedNodes).toEqual([
      { node: 'resize', op: 'Resize', reason: `fp16: ${FP16_BLOCK_LIST.Resize ?? ''}` },
      { node: 'sum', op: 'ReduceSum', reason: `fp16: ${FP16_BLOCK_LIST.ReduceSum ?? ''}` },
      { node: 'sigmoid', op: 'Sigmoid', reason: 'fp16: requested (blockNodes)' },
    ]);
    expect(Object.fromEntries(await computeTypes(model))).toEqual({
      conv: 'float16',
      resize: 'float32',
      relu: 'float16',
      sum: 'float32',
      sigmoid: 'float32',
    });
    expect(mainGraph(model.proto).initializer.find((t) => t.name === 'scales')?.dataType).toBe(1); // Resize's scales
    await expectConsistentValueInfo(model);
    await expectCloseOnCpu(original, model, { x: floatFeed([1, 4, 8, 8], 5) });
  });

  it('rewrites Constant, ConstantOfShape and Cast to produce fp16, and leaves LayerNormalization’s stash outputs float32', async () => {
    const g = new GraphBuilder('typed');
    const x = g.input('x', 'float32', [2, 8]);
    const two = g.node('Constant', [], { value_float: attr.float(2) });
    const zeros = g.node('ConstantOfShape', [g.node('Shape', [x])]);
    const ones = g.node('Cast', [g.node('Shape', [x])], { to: attr.int(1) });
    const scaled = g.node('Add', [g.node('Mul', [x, two]), zeros]);
    const [normed, mean] = g.nodeOutputs(
      'LayerNormalization',
      [scaled, g.initializer('gamma', new Float32Array(8).fill(1), [8])],
      ['normed', 'mean'],
      { axis: -1 },
    );
    g.output(g.node('Mul', [normed as string, g.node('ReduceMean', [ones], { keepdims: 0 })]), 'float32', [2, 8]);
    g.output(mean as string, 'float32', [2, 1]);
    const original = asOnnxModel(g.build({ opsets: { '': 17 } }));
    const { model, report } = await toHalf(cloneModel(original));
    expect(report.excludedNodes).toEqual([]);
    const inferred = await inferValueTypes(model, workDir);
    expect(inferred.get(two)?.dtype).toBe('float16');
    expect(inferred.get(zeros)?.dtype).toBe('float16');
    expect(inferred.get(ones)?.dtype).toBe('float16');
    expect(inferred.get('normed')?.dtype).toBe('float16');
    expect(valueTypes(mainGraph(model.proto)).get('mean')?.dtype).toBe('float32');
    await expectConsistentValueInfo(model);
    await expectCloseOnCpu(original, model, { x: floatFeed([2, 8], 6) });
  });

  it('keeps a node with subgraphs in float32, feeding the outer values its branches read through Casts', async () => {
    const g = new GraphBuilder('branch');
    const x = g.input('x', 'float32', [4]);
    const cond = g.input('cond', 'bool', []);
    const relu = g.node('Relu', [x], {}, { name: 'relu' });
    const then = g.subgraph('then');
    then.output(then.node('Mul', [relu, then.constant(Float32Array.of(2), [])]), 'float32', [4]);
    const otherwise = g.subgraph('else');
    otherwise.output(otherwise.node('Exp', [relu]), 'float32', [4]);
    const chosen = g.node(
      'If',
      [cond],
      { then_branch: then.toGraph(), else_branch: otherwise.toGraph() },
      { name: 'if' },
    );
    g.output(g.node('Add', [chosen, relu], {}, { name: 'add' }), 'float32', [4]);
    const original = asOnnxModel(g.build({ opsets: { '': 17 } }));
    const { model, report } = await toHalf(cloneModel(original));
    expect(report.excludedNodes).toEqual([
      { node: 'if', op: 'If', reason: 'fp16: holds subgraphs: kept float32, with Casts at its boundary' },
    ]);
    const ifNode = mainGraph(model.proto).node.find((n) => n.name === 'if');
    const branchReads = ifNode?.attribute.flatMap((a) => (a.g === undefined ? [] : a.g.node.flatMap((n) => n.input)));
    expect(branchReads).toContain('relu_fp32');
    expect(branchReads).not.toContain('relu');
    for (const flag of [true, false]) {
      await expectCloseOnCpu(original, model, {
        x: floatFeed([4], 7),
        cond: new ort.Tensor('bool', Uint8Array.of(flag ? 1 : 0), []),
      });
    }
  });

  it('keeps weights fp16 cannot hold in float32 (with their readers) and keeps tiny nonzero weights nonzero', async () => {
    const g = new GraphBuilder('ranges');
    const x = g.input('x', 'float32', [3]);
    const big = g.node('Mul', [x, g.initializer('big', Float32Array.of(1e6, 1, 1), [3])], {}, { name: 'big_mul' });
    const eps = g.node(
      'Add',
      [big, g.initializer('eps', Float32Array.of(1e-10, 0, -1e-9), [3])],
      {},
      { name: 'eps_add' },
    );
    g.output(eps, 'float32', [3]);
    const { model, report, clamps } = await toHalf(asOnnxModel(g.build({ opsets: { '': 17 } })));
    expect(report.excludedNodes).toEqual([
      { node: 'big_mul', op: 'Mul', reason: "fp16: big holds 1.00e+6, beyond fp16's largest finite value 65504" },
    ]);
    expect(clamps).toEqual({ toSmallest: 2, toLargest: 0 });
    expect(report.warnings.join('\n')).toMatch(/2 nonzero weights below fp16's smallest subnormal kept as ±2\^-24/);
    const out = floats(await run(model, { x: new ort.Tensor('float32', Float32Array.of(0, 0, 0), [3]) }), eps);
    expect([...out]).toEqual([2 ** -24, 0, -(2 ** -24)]);
  });
});
