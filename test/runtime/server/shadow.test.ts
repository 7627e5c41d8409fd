import { describe, expect, it } from 'vitest';
import { loadModel } from '../../../runtime/model/load.js';
import { ShadowStats } from '../../../runtime/server/serving/shadow.js';
import { NAN_INPUT, nanModel } from '../../helpers/nan-models.js';
import { tmpDir } from '../../helpers/tmp.js';

/** Production and shadow are real models run by ONNX Runtime on the same request, as the service mirrors it. */
async function compare(production: string, shadow: string): Promise<ReturnType<ShadowStats['report']>> {
  const stats = new ShadowStats('2.0.0', 100);
  const [p, s] = [await loadModel(production, { warmup: 0 }), await loadModel(shadow, { warmup: 0 })];
  try {
    for (let i = 0; i < 3; i++) {
      const feeds = { x: { data: NAN_INPUT.data, dims: NAN_INPUT.dims } };
      stats.record(await p.infer(feeds), await s.infer(feeds), 1, 1);
    }
  } finally {
    await p.release();
    await s.release();
  }
  return stats.report();
}

describe('ShadowStats on models that emit NaN', () => {
  it('reports a shadow that answers NaN where production answers numbers: max |Δ| Infinity, agreement falls', async () => {
    const dir = await tmpDir();
    const report = await compare(await nanModel(dir, 'log-abs'), await nanModel(dir, 'log'));
    expect(report.compared).toBe(3);
    expect(report.maxAbsDiff).toBe(Infinity);
    expect(report.nonFiniteMismatches).toBe(9); // two negatives and a zero per request
    expect(report.meanCosine).toBeLessThan(0.7);
    expect(report.agreement).toBeLessThan(1);
  });

  it('reports the same NaNs in the same places as full agreement', async () => {
    const dir = await tmpDir();
    const report = await compare(await nanModel(dir, 'sqrt'), await nanModel(dir, 'sqrt'));
    expect(report.maxAbsDiff).toBe(0);
    expect(report.nonFiniteMismatches).toBe(0);
    expect(report.meanCosine).toBe(1);
    expect(report.agreement).toBe(1);
  });
});
