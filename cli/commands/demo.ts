import type { Command } from 'commander';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { latencyStats, measure } from '../../runtime/bench/stats.js';
import type { BackendName } from '../../runtime/backends/types.js';
import { loadModel } from '../../runtime/model/load.js';
import { syntheticFeeds } from '../../runtime/model/warmup.js';
import { allClose } from '../../runtime/tensor/tensor.js';
import { buildSamples } from '../../models/build.js';
import { ortLogLevel } from '../context.js';
import { formatNumber, print, table } from '../output.js';

const BACKENDS: readonly BackendName[] = ['native', 'wasm'];
const ITERATIONS = 200;

/** The sample models, built here, each run on both backends with the same input: answers, agreement, timings. */
async function demo(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'outpost-demo-'));
  try {
    print(`Building sample models in ${dir} (fixed seeds, nothing downloaded)…`);
    const samples = await buildSamples(dir);
    for (const [name, path] of Object.entries(samples)) {
      print(`\n${name}  ${path}`);
      const rows: (string | number)[][] = [];
      let reference: Float32Array | undefined;
      for (const backend of BACKENDS) {
        const model = await loadModel(path, { backend, ortLogLevel: ortLogLevel() });
        try {
          const feeds = syntheticFeeds(model);
          const outputs = await model.infer(feeds);
          const logits = outputs[model.outputs[0]?.name ?? '']?.data as Float32Array;
          reference ??= logits;
          const agreement = allClose(logits, reference, 1e-4, 1e-4);
          let best = 0;
          logits.forEach((v, i) => (best = v > (logits[best] ?? -Infinity) ? i : best));
          const timing = await measure(() => model.infer(feeds), {
            warmup: 20,
            iterations: ITERATIONS,
            concurrency: 1,
          });
          const stats = latencyStats(timing.samples);
          rows.push([
            backend,
            `class ${best} (${formatNumber(logits[best] ?? NaN)})`,
            agreement.maxAbsErr,
            model.loadMs,
            stats.p50,
            stats.p99,
          ]);
        } finally {
          await model.release();
        }
      }
      print(table(['backend', 'answer (argmax logit)', 'max |Δ| vs native', 'load ms', 'p50 ms', 'p99 ms'], rows));
    }
    print('\nNext: `outpost inspect`, `outpost run` and `outpost bench --backend all` on any .onnx file or artifact.');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export function register(program: Command): void {
  program
    .command('demo')
    .description('build the sample models and run them on both backends, with timings')
    .action(demo);
}
