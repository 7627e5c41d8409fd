import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  GraphBuilder,
  asOnnxModel,
  attr,
  float16ToFloat32,
  float32ToFloat16,
  loadModel,
  mainGraph,
  makeTensor,
  modelGraphs,
  modelTensors,
  saveModel,
  type OnnxModel,
} from '../../../compiler/onnx/index.js';
import { convertToFloat16 } from '../../../compiler/passes/fp16.js';
import { fixInputShapes } from '../../../compiler/passes/fix-input-shapes.js';
import { usesFloat16 } from '../../../compiler/passes/ort-offline.js';
import { widenFloat16, widenFloat16Detailed } from '../../../compiler/passes/widen-fp16.js';
import { buildSegmentationFp16 } from '../../../models/segmentation.js';
import { suiteTmpDir } from '../../helpers/tmp.js';
import { OCR_MODELS, cosine, floatFeed, floats, passContext, randomFloats, run } from '../../helpers/pass-runs.js';

let workDir: string;
let dispose: () => Promise<void>;
beforeAll(async () => ({ dir: workDir, dispose } = await suiteTmpDir('outpost-widen-')));
afterAll(() => dispose());

const FLOAT16 = 10;

/** Every FLOAT16 mention left in the model: tensors, value types, Cast/dtype attributes. */
function halfMentions(model: OnnxModel): string[] {
  const found: string[] = [];
  for (const { tensor } of modelTensors(model.proto))
    if (tensor.dataType === FLOAT16) found.push(`tensor ${tensor.name}`);
  for (const graph of modelGraphs(model.proto)) {
    for (const v of [...graph.input, ...graph.output, ...graph.valueInfo]) {
      if (v.type?.value.case === 'tensorType' && v.type.value.value.elemType === FLOAT16) found.push(`value ${v.name}`);
    }
    for (const node of graph.node)
      for (const a of node.attribute)
        if (a.i === BigInt(FLOAT16) && (a.name === 'to' || a.name === 'dtype'))
          found.push(`${node.opType} ${node.name}`);
  }
  return found;
}

function halfFeed(dims: number[], seed: number): ort.Tensor {
  const n = dims.reduce((a, b) => a * b, 1);
  return new ort.Tensor('float16', float32ToFloat16(randomFloats(n, seed)), dims);
}

describe('widenFloat16', () => {
  it('widens an fp16-exported segmentation net to float32 compute, keeping its float16 interface', async () => {
    const model = asOnnxModel(buildSegmentationFp16({ size: 128, width: 8 }));
    expect(usesFloat16(model)).toBe(true);
    const original = asOnnxModel(structuredClone(model.proto));
    const result = await widenFloat16Detailed(model);
    expect(result.tensors).toBeGreaterThan(20);
    expect(result.selectors).toBe(5); // the Casts back to FLOAT16 after each of the five Resizes
    expect(result.edges).toBe(3); // image in, mask and side out
    // Only the interface still says float16: the graph's inputs/outputs and the Casts that write the outputs.
    const graph = mainGraph(model.proto);
    expect(halfMentions(model).sort()).toEqual(
      [
        'value image',
        'value mask',
        'value side',
        ...graph.node
          .filter((n) => n.opType === 'Cast' && n.attribute.some((a) => a.i === BigInt(FLOAT16)))
          .map((n) => `Cast ${n.name}`),
      ].sort(),
    );
    expect(usesFloat16(model)).toBe(false);
    const feeds = { image: halfFeed([1, 3, 128, 128], 3) };
    const [before, after] = [await run(original, feeds), await run(model, feeds)];
    for (const name of ['mask', 'side']) {
      const a = float16ToFloat32(before[name]?.data as Uint16Array);
      const b = float16ToFloat32(after[name]?.data as Uint16Array);
      expect(cosine(a, b), name).toBeGreaterThan(0.9999);
    }
  });

  it('turns a real fp32 CNN made fp16 (PaddleOCR cls) back into float32 with the same answers', async () => {
    const context = passContext('cuda:sm_87', workDir);
    const fixed = await fixInputShapes(await loadModel(OCR_MODELS.cls), context, { shapes: { x: [1, 3, 48, 192] } });
    const fp32 = asOnnxModel(structuredClone(fixed.proto));
    const half = await convertToFloat16(fixed, context, undefined);
    expect(usesFloat16(half)).toBe(true);
    const widened = await widenFloat16(half, passContext('arm64', workDir), undefined);
    expect(halfMentions(widened)).toEqual([]);
    const feeds = { x: floatFeed([1, 3, 48, 192], 5) };
    const output = mainGraph(fp32.proto).output[0]?.name ?? '';
    const [a, b] = [floats(await run(fp32, feeds), output), floats(await run(widened, feeds), output)];
    expect(cosine(a, b)).toBeGreaterThan(0.9999); // only the fp16 rounding of the weights remains
  });

  it('widens Constant, ConstantOfShape and value_info in subgraphs, and fp16 initializers kept as external data', async () => {
    const g = new GraphBuilder('half-bits');
    const x = g.input('x', 'float32', [2]);
    const c = g.constant(float32ToFloat16(Float32Array.from([0.5, 0.25])), [2], 'float16');
    const filled = g.node('ConstantOfShape', [g.initializer('shape', BigInt64Array.from([2n]), [1])], {
      value: makeTensor('value', float32ToFloat16(Float32Array.from([2])), [1], 'float16'),
    });
    const w = g.initializer(
      'w',
      float32ToFloat16(Float32Array.from({ length: 4096 }, (_, i) => (i % 7) / 8)),
      [4096],
      'float16',
    );
    const xh = g.node('Cast', [x], { to: attr.int(FLOAT16) });
    const sum = g.node('Add', [g.node('Mul', [xh, c]), filled]);
    const branch = g.subgraph('then');
    const inner = branch.node('Identity', [sum]);
    branch.valueInfo(inner, 'float16', [2]);
    branch.output(inner, 'float16', [2]);
    const cond = g.initializer('cond', Uint8Array.from([1]), [], 'bool');
    const chosen = g.node('If', [cond], { then_branch: branch.toGraph(), else_branch: branch.toGraph() });
    const total = g.node('ReduceSum', [w], { keepdims: attr.int(0) });
    const y = g.node('Cast', [g.node('Add', [chosen, total])], { to: attr.int(1) });
    g.output(y, 'float32', [2]);
    const path = join(workDir, 'half-bits.onnx');
    await saveModel(g.build({ opsets: { '': 17 } }), path, {
      externalData: { location: 'half-bits.data', threshold: 1024 },
    });
    const model = await loadModel(path, { externalData: 'lazy' });
    await widenFloat16(model, passContext('arm64', workDir), undefined);
    expect(halfMentions(model)).toEqual([]);
    const out = floats(await run(model, { x: new ort.Tensor('float32', Float32Array.from([2, 4]), [2]) }), y);
    const wsum = Array.from({ length: 4096 }, (_, i) => (i % 7) / 8).reduce((a, b) => a + b, 0);
    expect(Array.from(out)).toEqual([2 * 0.5 + 2 + wsum, 4 * 0.25 + 2 + wsum]);
  });
});
