import type { TensorSpec } from '../../runtime/artifact/manifest.js';
import type { TensorValue } from '../../runtime/backends/types.js';
import { latencyStats, measure } from '../../runtime/bench/stats.js';
import { loadModel } from '../../runtime/model/load.js';
import type { Feeds } from '../../runtime/model/model.js';
import { figures, outputAgreements, type AccuracyFigures } from './metrics.js';

/** The fp32 original's outputs on the held-out samples: computed once, compared against every variant. */
export interface Reference {
  readonly samples: readonly Feeds[];
  readonly outputs: readonly Readonly<Record<string, TensorValue>>[];
  readonly specs: readonly TensorSpec[];
}

export async function reference(modelPath: string, samples: readonly Feeds[]): Promise<Reference> {
  const model = await loadModel(modelPath, { backend: 'native', warmup: 0, ortLogLevel: 'fatal' });
  try {
    const outputs = [];
    for (const feeds of samples) outputs.push(await model.infer(feeds));
    return { samples, outputs, specs: model.outputs };
  } finally {
    await model.release();
  }
}

/** Accuracy of a variant file against the reference, run on the native backend (CPU). */
export async function accuracy(variantPath: string, ref: Reference): Promise<AccuracyFigures> {
  const model = await loadModel(variantPath, { backend: 'native', warmup: 0, ortLogLevel: 'fatal' });
  try {
    const agreements = outputAgreements(ref.specs);
    for (const [i, feeds] of ref.samples.entries()) {
      const actual = await model.infer(feeds);
      const expected = ref.outputs[i] ?? {};
      for (const [name, agreement] of agreements) {
        const a = actual[name];
        const e = expected[name];
        if (a !== undefined && e !== undefined) agreement.add(a.data, e.data, e.dims);
      }
    }
    return figures(agreements);
  } finally {
    await model.release();
  }
}

/** p50 latency of a variant on this machine (native backend, one sample), for host selection. */
export async function latencyP50(variantPath: string, feeds: Feeds, iterations = 100): Promise<number> {
  const model = await loadModel(variantPath, { backend: 'native', warmup: 5, ortLogLevel: 'fatal' });
  try {
    const run = await measure(() => model.infer(feeds), { warmup: 10, iterations, concurrency: 1 });
    return latencyStats(run.samples).p50;
  } finally {
    await model.release();
  }
}
