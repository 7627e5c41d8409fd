/**
 * Hot-path cost of the drift monitor (README.md, "Model Monitor"):
 *   npx tsx bench/monitor.ts [--calls N] [--rounds R] [--json]
 * The sample CNN served by one ModelService with the DriftMonitor watching at 100 % sampling, and by another with no
 * monitor, on the same loaded model in the same process; subjects alternate round by round and each round's p50 is
 * compared. Goal: monitored p50 ≤ 1.03 × unmonitored p50.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { buildSamples } from '../models/build.js';
import { loadModel } from '../runtime/model/index.js';
import { DriftMonitor, computeBaseline, type SampleTensor } from '../runtime/monitor/index.js';
import { ModelService } from '../runtime/server/index.js';
import { seededRandom } from '../runtime/tensor/index.js';

const { values } = parseArgs({
  options: {
    calls: { type: 'string', default: '500' },
    rounds: { type: 'string', default: '6' },
    json: { type: 'boolean', default: false },
  },
});
const calls = Number(values.calls);
const rounds = Number(values.rounds);

const random = seededRandom(7);
const image = (): SampleTensor & { type: 'float32' } => ({
  type: 'float32',
  dims: [1, 3, 64, 64],
  data: Float32Array.from({ length: 3 * 64 * 64 }, () => random()),
});

const p50 = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;

const dir = await mkdtemp(join(tmpdir(), 'outpost-bench-monitor-'));
try {
  const { cnn } = await buildSamples(dir);
  const model = await loadModel(cnn, { backend: 'native' });
  const samples = Array.from({ length: 64 }, () => ({ image: image() }));
  const outputs = [];
  for (const s of samples) outputs.push(await model.infer(s));
  const baseline = computeBaseline(samples, outputs, { source: 'bench', layout: 'NCHW' });
  const monitor = new DriftMonitor({ samplePercent: 100, window: 1000 });
  monitor.watch(model.name, model.version, baseline, 'NCHW');
  const watched = new ModelService(model.name, { observers: [monitor.observer] });
  const bare = new ModelService(model.name);
  await watched.setVersions([{ model }]);
  await bare.setVersions([{ model }]);
  const inputs = Array.from({ length: 32 }, () => ({ image: image() }));
  const run = async (service: ModelService) => {
    const ms: number[] = [];
    for (let i = 0; i < calls; i++) {
      const started = performance.now();
      await service.infer(inputs[i % inputs.length] ?? {});
      ms.push(performance.now() - started);
    }
    return p50(ms);
  };
  await run(bare);
  await run(watched); // warm both paths
  const ratios: number[] = [];
  const figures: { bare: number; monitored: number }[] = [];
  for (let r = 0; r < rounds; r++) {
    const first = r % 2 === 0;
    const a = await run(first ? bare : watched);
    const b = await run(first ? watched : bare);
    const round = first ? { bare: a, monitored: b } : { bare: b, monitored: a };
    figures.push(round);
    ratios.push(round.monitored / round.bare);
    process.stderr.write(`round ${r + 1}/${rounds}: ${round.monitored.toFixed(3)} / ${round.bare.toFixed(3)} ms\n`);
  }
  const report = {
    model: 'sample CNN 3×64×64 (native)',
    calls,
    rounds,
    bareP50Ms: p50(figures.map((f) => f.bare)),
    monitoredP50Ms: p50(figures.map((f) => f.monitored)),
    ratio: p50(ratios),
    features: baseline.inputs.length + baseline.outputs.length + baseline.classes.length,
    windowSamples: monitor.reports()[0]?.samples ?? 0,
  };
  if (values.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  else
    process.stdout.write(
      `drift monitor on the ${report.model}, ${report.features} features: p50 ${report.monitoredP50Ms.toFixed(3)} ms monitored vs ${report.bareP50Ms.toFixed(3)} ms bare = ${report.ratio.toFixed(3)}× (median of ${rounds} alternated rounds of ${calls} calls; goal ≤ 1.03×)\n`,
    );
  await watched.close();
  await bare.close();
  await model.release();
} finally {
  await rm(dir, { recursive: true, force: true });
}
