import { describe, expect, it } from 'vitest';
import {
  GraphBuilder,
  asOnnxModel,
  cloneModel,
  decodeModel,
  encodeModel,
  loadModel,
  opHistogram,
  type OnnxModel,
} from '../../../compiler/onnx/index.js';
import { quantizeDynamic, type DynamicQuantizeOptions } from '../../../compiler/passes/quantize-dynamic.js';
import type { PassReport } from '../../../compiler/passes/types.js';
import { buildMlp } from '../../../models/samples.js';
import { REAL_MODELS } from '../../helpers/models.js';
import { tmpDir } from '../../helpers/tmp.js';
import { PADDLE, U8S8, cosine, imageLike, nativeSession, passContext, runFirst, runWeb, uniform } from './helpers.js';

async function quantize(model: OnnxModel, options: Partial<DynamicQuantizeOptions> = {}) {
  const context = passContext(await tmpDir());
  const out = await quantizeDynamic(cloneModel(model), context, { format: U8S8, ...options });
  return { bytes: encodeModel(out), report: context.report };
}

/** Runs fp32 and int8 on the same inputs (one session each) and returns all outputs, concatenated. */
async function outputs(
  fp32: Uint8Array,
  int8: Uint8Array,
  input: string,
  inputs: readonly Float32Array[],
  dims: number[],
) {
  const collect = async (bytes: Uint8Array): Promise<number[]> => {
    const session = await nativeSession(bytes);
    const values: number[] = [];
    try {
      for (const x of inputs) for (const v of await runFirst(session, input, x, dims)) values.push(v);
    } finally {
      await session.release();
    }
    return values;
  };
  return { a: await collect(fp32), b: await collect(int8) };
}

function reasons(report: PassReport): string[] {
  return report.excludedNodes.map((e) => `${e.node}: ${e.reason}`);
}

describe('quantizeDynamic', () => {
  it('quantises the sample MLP (Gemm) in both forms: cosine ≥ 0.99, loads on node and web', async () => {
    const model = asOnnxModel(buildMlp().proto);
    const fp32 = encodeModel(model);
    const x = uniform(8 * 16, 3);
    for (const form of ['integer', 'contrib'] as const) {
      const { bytes, report } = await quantize(model, { form });
      expect(report.warnings).toEqual([]);
      expect(opHistogram(model.proto).get('Gemm')).toBe(3); // the pass had a copy
      expect(opHistogram(decodeModel(bytes).proto).get('Gemm')).toBeUndefined();
      const { a, b } = await outputs(fp32, bytes, 'x', [x], [8, 16]);
      expect(cosine(a, b), form).toBeGreaterThanOrEqual(0.99);
      const web = await runWeb(bytes, 'x', x, [8, 16]);
      expect(cosine(b, web), form).toBeGreaterThan(0.999);
      expect(bytes.length / fp32.length).toBeLessThan(0.36);
    }
  });

  it('quantises the openWakeWord head: scores of 8 windows keep cosine ≥ 0.99', async () => {
    const model = await loadModel(REAL_MODELS.wakeWord);
    const { bytes } = await quantize(model);
    const windows = Array.from({ length: 8 }, (_, i) => uniform(25 * 96, 40 + i, 2));
    const { a, b } = await outputs(encodeModel(model), bytes, 'onnx::Flatten_0', windows, [1, 25, 96]);
    expect(cosine(a, b)).toBeGreaterThanOrEqual(0.99);
    for (let i = 0; i < a.length; i++) expect(Math.abs((a[i] as number) - (b[i] as number))).toBeLessThan(0.02);
    expect((await runWeb(bytes, 'onnx::Flatten_0', windows[0] as Float32Array, [1, 25, 96])).length).toBe(1);
  });

  it("quantises the PaddleOCR recogniser's constant-weight MatMuls and skips the attention ones", async () => {
    const model = await loadModel(PADDLE.rec);
    const { bytes, report } = await quantize(model);
    expect(report.warnings[0]).toBe('default-domain opset upgraded from 9 to 13 for DynamicQuantizeLinear');
    // Attention's Q·Kᵀ and A·V multiply two activations: nothing constant to quantise.
    const skipped = reasons(report).filter((r) => r.includes('is not a constant float32 initializer'));
    expect(skipped.length).toBe(4);
    expect(opHistogram(decodeModel(bytes).proto).get('MatMulInteger')).toBe(9);
    const dims = [1, 3, 48, 160];
    const inputs = [1, 2].map((seed) => imageLike([1, 3, 48, 160], seed));
    const { a, b } = await outputs(encodeModel(model), bytes, 'x', inputs, dims);
    expect(cosine(a, b)).toBeGreaterThanOrEqual(0.99);
    expect((await runWeb(bytes, 'x', inputs[0] as Float32Array, dims)).length).toBe(a.length / 2);
  });

  it('keeps excluded nodes and subgraph nodes float, and says so', async () => {
    const g = new GraphBuilder('branchy');
    const x = g.input('x', 'float32', [2, 4]);
    const cond = g.input('cond', 'bool', []);
    const w = g.initializer('w', uniform(16, 1), [4, 4]);
    const h = g.node('MatMul', [x, w], {}, { name: 'kept' });
    const then = g.subgraph('then');
    then.output(then.node('MatMul', [h, w], {}, { name: 'inner' }));
    const otherwise = g.subgraph('else');
    otherwise.output(otherwise.node('Relu', [h]));
    g.output(g.node('If', [cond], { then_branch: then.toGraph(), else_branch: otherwise.toGraph() }), 'float32');
    const model = asOnnxModel(g.build({ opsets: { '': 13 } }));
    const { bytes, report } = await quantize(model, { exclude: new Set(['kept']) });
    expect(reasons(report)).toEqual([
      'inner: inside a subgraph of If "If": only the main graph is quantised',
      'kept: excluded by option',
    ]);
    expect(bytes).toEqual(encodeModel(model));
  });
});
