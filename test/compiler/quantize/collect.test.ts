import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { Evaluator } from '../../../compiler/evaluate/evaluator.js';
import { collectRanges, quantisableValues, type CalibrationSample } from '../../../compiler/calibration/collect.js';
import {
  asOnnxModel,
  cloneModel,
  encodeModel,
  loadModel,
  mainGraph,
  makeValueInfo,
  saveModel,
} from '../../../compiler/onnx/index.js';
import { buildCnn } from '../../../models/samples.js';
import { tmpDir } from '../../helpers/tmp.js';
import { imageLike } from './helpers.js';

const DIMS = [1, 3, 64, 64] as const;
const SAMPLES = 4;

function samples(seed: number, count = SAMPLES): CalibrationSample[] {
  return Array.from({ length: count }, (_, i) => ({ image: { data: imageLike(DIMS, seed + i), dims: DIMS } }));
}

describe('collectRanges', () => {
  it('equals the min and max of the intermediate values, computed directly', async () => {
    const model = asOnnxModel(buildCnn().proto);
    const ranges = await collectRanges(model, samples(1), { method: 'minmax' });
    // The reference: every node output made a graph output of a plain copy, run sample by sample.
    const copy = cloneModel(model);
    const graph = mainGraph(copy.proto);
    const names = quantisableValues(mainGraph(model.proto)).filter((n) => n !== 'image' && n !== 'logits');
    for (const name of names) graph.output.push(makeValueInfo(name, 'float32'));
    // Unoptimised, as calibration runs: fused kernels would round differently in the last bit.
    const session = await ort.InferenceSession.create(encodeModel(copy), {
      logSeverityLevel: 3,
      graphOptimizationLevel: 'disabled',
    });
    const expected = new Map<string, { min: number; max: number }>();
    const fold = (name: string, data: Float32Array): void => {
      const e = expected.get(name) ?? { min: Infinity, max: -Infinity };
      for (const v of data) {
        e.min = Math.min(e.min, v);
        e.max = Math.max(e.max, v);
      }
      expected.set(name, e);
    };
    for (const sample of samples(1)) {
      const input = sample.image as { data: Float32Array; dims: readonly number[] };
      const out = await session.run({ image: new ort.Tensor('float32', input.data, input.dims) });
      for (const [name, tensor] of Object.entries(out)) fold(name, tensor.data as Float32Array);
      fold('image', input.data);
    }
    await session.release();
    expect(new Set(ranges.keys())).toEqual(new Set(expected.keys()));
    for (const [name, range] of ranges) expect(range, name).toEqual(expected.get(name));
  });

  it('reports progress per sample, and gives percentile/entropy ranges inside the minmax ones', async () => {
    const model = asOnnxModel(buildCnn().proto);
    const progress: number[] = [];
    const evaluator = new Evaluator({ onProgress: (stage, done) => stage === 'calibrate' && progress.push(done) });
    const minmax = await collectRanges(model, samples(20), { method: 'minmax', evaluator }).finally(() =>
      evaluator.close(),
    );
    expect(progress).toEqual([0, 1, 2, 3, 4]);
    for (const method of ['percentile', 'entropy'] as const) {
      const ranges = await collectRanges(model, samples(20), { method });
      for (const [name, r] of ranges) {
        const m = minmax.get(name);
        expect(m, name).toBeDefined();
        expect(r.min).toBeGreaterThanOrEqual(m?.min ?? NaN);
        expect(r.max).toBeLessThanOrEqual(m?.max ?? NaN);
      }
    }
  });

  it('gives the same ranges when activations are fetched in small groups (one run per group)', async () => {
    const model = asOnnxModel(buildCnn().proto);
    for (const method of ['minmax', 'entropy'] as const) {
      const whole = await collectRanges(model, samples(8), { method });
      const grouped = await collectRanges(model, samples(8), { method, maxFetchBytes: 64 * 1024 });
      expect(grouped, method).toEqual(whole);
    }
  });

  it('calibrates only the tensors asked for, and accepts any size on a symbolic batch dimension', async () => {
    const model = asOnnxModel(buildCnn().proto);
    const batch = { image: { data: imageLike([2, 3, 64, 64], 3), dims: [2, 3, 64, 64] } };
    const ranges = await collectRanges(model, [batch], { method: 'minmax', tensors: ['logits', 'image'] });
    expect([...ranges.keys()].sort()).toEqual(['image', 'logits']);
    await expect(collectRanges(model, [batch], { method: 'minmax', tensors: ['nope'] })).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
    });
  });

  it('runs a model whose weights live in an external data file', async () => {
    const dir = await tmpDir();
    const path = join(dir, 'cnn.onnx');
    await saveModel(asOnnxModel(buildCnn().proto), path, { externalData: { location: 'cnn.onnx.data' } });
    const lazy = await loadModel(path);
    const ranges = await collectRanges(lazy, samples(1, 2), { method: 'minmax', workDir: dir });
    const direct = await collectRanges(asOnnxModel(buildCnn().proto), samples(1, 2), { method: 'minmax' });
    expect(ranges).toEqual(direct);
  });

  it('refuses wrong calibration tensors with CALIBRATION_INVALID naming the input, expected and actual', async () => {
    const model = asOnnxModel(buildCnn().proto);
    const run = (sample: CalibrationSample) => collectRanges(model, [...samples(1, 1), sample], { method: 'minmax' });

    const shape = run({ image: { data: new Float32Array(3 * 32 * 32), dims: [1, 3, 32, 32] } });
    await expect(shape).rejects.toMatchObject({
      code: 'CALIBRATION_INVALID',
      details: { input: 'image', actual: [1, 3, 32, 32] },
    });
    for (const part of ['sample 1', '"image"', '[1, 3, 32, 32]', '[batch, 3, 64, 64]'])
      await expect(shape).rejects.toThrow(part);

    await expect(run({ image: { data: new Float64Array(3 * 64 * 64), dims: [1, 3, 64, 64] } })).rejects.toMatchObject({
      code: 'CALIBRATION_INVALID',
      message: expect.stringContaining('is float64; the model expects float32') as unknown,
    });
    await expect(run({ image: { data: new Float32Array(10), dims: [1, 3, 64, 64] } })).rejects.toThrow('but 10 values');
    await expect(run({})).rejects.toThrow('lacks input "image"');
    await expect(run({ ...samples(1, 1)[0], mask: { data: new Float32Array(1), dims: [1] } })).rejects.toThrow(
      '"mask"',
    );

    await expect(collectRanges(model, [], { method: 'minmax' })).rejects.toMatchObject({ code: 'CALIBRATION_INVALID' });
  });
});
