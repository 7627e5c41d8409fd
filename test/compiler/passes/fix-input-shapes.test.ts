import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  GraphBuilder,
  asOnnxModel,
  cloneModel,
  loadModel,
  mainGraph,
  valueTypes,
  type OnnxModel,
} from '../../../compiler/onnx/index.js';
import { fixInputShapes, requireStaticInputs, symbolicInputs } from '../../../compiler/passes/fix-input-shapes.js';
import { inferValueTypes } from '../../../compiler/passes/shapes.js';
import { allClose } from '../../../runtime/tensor/tensor.js';
import { buildCnn, buildMlp } from '../../../models/samples.js';
import { suiteTmpDir } from '../../helpers/tmp.js';
import { OCR_MODELS, floatFeed, floats, passContext, run } from '../../helpers/pass-runs.js';

let workDir: string;
let dispose: () => Promise<void>;
beforeAll(async () => ({ dir: workDir, dispose } = await suiteTmpDir('outpost-shapes-')));
afterAll(() => dispose());

const shapeOf = (model: OnnxModel, name: string) => valueTypes(mainGraph(model.proto)).get(name)?.shape;

/** a, b [batch, 4] → Relu(a + b): two inputs sharing one symbol, an intermediate with value_info. */
function twoInputs(): OnnxModel {
  const g = new GraphBuilder('two');
  const a = g.input('a', 'float32', ['batch', 4]);
  const b = g.input('b', 'float32', ['batch', 4]);
  const sum = g.node('Add', [a, b]);
  g.valueInfo(sum, 'float32', ['batch', 4]);
  g.output(g.node('Relu', [sum]), 'float32', ['batch', 4]);
  return asOnnxModel(g.build({ opsets: { '': 17 } }));
}

describe('fixInputShapes', () => {
  it('fixes the named input, substitutes its symbols in the outputs, and the model runs at that shape', async () => {
    const model = asOnnxModel(buildMlp().proto);
    const context = passContext('x86_64', workDir);
    await fixInputShapes(model, context, { shapes: { x: [4, 16] } });
    expect(shapeOf(model, 'x')).toEqual([4, 16]);
    expect(shapeOf(model, 'logits')).toEqual([4, 10]);
    expect(symbolicInputs(model)).toEqual([]);
    const out = await run(model, { x: floatFeed([4, 16], 1) });
    expect(out.logits?.dims).toEqual([4, 10]);
  });

  it('binds a shared symbol in every input that uses it, and reports that it did', async () => {
    const model = twoInputs();
    const context = passContext('x86_64', workDir);
    await fixInputShapes(model, context, { shapes: { a: [3, 4] } });
    expect(shapeOf(model, 'b')).toEqual([3, 4]);
    expect(context.report.warnings).toEqual(['input b: "batch" = 3 (bound by a)']);
  });

  it('drops stale value_info shapes but keeps their types; reinfer writes ORT’s exact shapes back', async () => {
    const model = twoInputs();
    await fixInputShapes(model, passContext('x86_64', workDir), { shapes: { a: [3, 4] } });
    const info = mainGraph(model.proto).valueInfo.find((v) => v.name === 'add');
    expect(valueTypes(mainGraph(model.proto)).get('add')).toMatchObject({ dtype: 'float32', shape: undefined });
    expect(info).toBeDefined();

    const cnn = asOnnxModel(buildCnn().proto);
    await fixInputShapes(cnn, passContext('x86_64', workDir), { shapes: { image: [2, 3, 64, 64] }, reinfer: true });
    expect(shapeOf(cnn, 'conv')).toEqual([2, 16, 64, 64]);
    expect(shapeOf(cnn, 'maxpool_1')).toEqual([2, 32, 16, 16]);
  });

  it('fixes the PaddleOCR classifier without changing its answers', async () => {
    const original = await loadModel(OCR_MODELS.cls);
    expect(symbolicInputs(original)).toEqual([
      {
        name: 'x',
        shape: ['p2o.DynamicDimension.0', 3, 'p2o.DynamicDimension.1', 'p2o.DynamicDimension.2'],
        symbols: ['p2o.DynamicDimension.0', 'p2o.DynamicDimension.1', 'p2o.DynamicDimension.2'],
      },
    ]);
    expect(() => requireStaticInputs(original, 'the test')).toThrow(/--input-shape x=<p2o.DynamicDimension.0>,3,/);
    const fixed = cloneModel(original);
    await fixInputShapes(fixed, passContext('arm64', workDir), { shapes: { x: [2, 3, 48, 192] }, reinfer: true });
    requireStaticInputs(fixed, 'the test');
    const feeds = { x: floatFeed([2, 3, 48, 192], 7) };
    const [a, b] = [await run(original, feeds), await run(fixed, feeds)];
    const name = mainGraph(original.proto).output[0]?.name ?? '';
    expect(allClose(floats(b, name), floats(a, name), 1e-6, 1e-5).ok).toBe(true);
    // ORT infers the convolution stack's shapes from the fixed input; the Reshape fed by Shape ops stays unknown.
    const conv = mainGraph(fixed.proto).node.find((n) => n.opType === 'Conv')?.output[0] ?? '';
    expect(shapeOf(fixed, conv)).toEqual([2, 8, 24, 96]);
    expect((await inferValueTypes(fixed, workDir)).get(conv)?.shape).toEqual([2, 8, 24, 96]);
  });

  it('names an unknown input and lists the real ones (initializers are not inputs)', async () => {
    await expect(
      fixInputShapes(asOnnxModel(buildCnn().proto), passContext('x86_64', workDir), {
        shapes: { img: [1, 3, 64, 64] },
      }),
    ).rejects.toMatchObject({
      code: 'INPUT_NAME_UNKNOWN',
      message: expect.stringMatching(
        /--input-shape names "img", which is not an input of .*; inputs: image \[batch, 3, 64, 64\]$/,
      ) as unknown,
    });
  });

  it('refuses a wrong rank, a conflicting fixed dimension and two sizes for one symbol', async () => {
    const context = passContext('x86_64', workDir);
    await expect(
      fixInputShapes(asOnnxModel(buildCnn().proto), context, { shapes: { image: [1, 3, 64] } }),
    ).rejects.toMatchObject({
      code: 'INPUT_SHAPE_MISMATCH',
      message: expect.stringMatching(
        /image: 3 dimensions \[1, 3, 64\] given, the model declares rank 4 \[batch, 3, 64, 64\]/,
      ) as unknown,
    });
    await expect(
      fixInputShapes(asOnnxModel(buildCnn().proto), context, { shapes: { image: [1, 4, 64, 64] } }),
    ).rejects.toMatchObject({
      code: 'INPUT_SHAPE_MISMATCH',
      message: expect.stringMatching(/image: dimension 1 is fixed at 3 in the model, 4 given/) as unknown,
    });
    await expect(fixInputShapes(twoInputs(), context, { shapes: { a: [2, 4], b: [5, 4] } })).rejects.toMatchObject({
      code: 'INPUT_SHAPE_MISMATCH',
      message: expect.stringMatching(/b: dimension 0 is "batch", which a already binds to 2; 5 given/) as unknown,
    });
  });

  it('refuses sizes that are not positive integers', async () => {
    for (const dims of [[0, 16], [-1, 16], [1.5, 16], []]) {
      await expect(
        fixInputShapes(asOnnxModel(buildMlp().proto), passContext('x86_64', workDir), { shapes: { x: dims } }),
      ).rejects.toMatchObject({
        code: 'INVALID_ARGUMENT',
        message: expect.stringMatching(/expected one or more positive integers/) as unknown,
      });
    }
  });
});
