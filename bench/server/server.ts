/**
 * The inference server's numbers ("Measured in a benchmark"):  npx tsx bench/server/server.ts [--quick] [--json]
 *   1. HTTP JSON latency added over in-process on a tiny model (the sample MLP), same process, same model:
 *      Model.infer and ModelService.infer against POST /infer over a keep-alive agent, TCP 127.0.0.1 and a unix
 *      socket, subjects interleaved round by round. Goal: added p50 ≤ 0.15 ms.
 *   2. Binary tensor extension against JSON on a 1×3×224×224 FP32 input (a ReduceMean model, so the model's own time
 *      is small and reported): end-to-end request latency with the bodies encoded beforehand. Goal: ≥ 5× faster.
 *   3. Throughput with 32 closed-loop clients, direct scheduler against dynamic batching, on the MLP (JSON) and the
 *      sample CNN (3×64×64, binary); the two servers run side by side and the load alternates between them in
 *      slices; mean batch size from the server's own metrics (GET /metrics).
 *   4. A load test with autocannon: 64 connections, 30 s, MLP JSON, batching as `outpost serve` runs it. Goal: 0
 *      errors; RSS of the server before, during (peak) and after.
 * Benches 1–2 run the server in this process; 3–4 run it in a child process (bench/server/child.ts) so that the
 * load generator and the server each get a core and the RSS is the server's alone. `--quick` (or BENCH_QUICK=1)
 * shortens every part. Exits non-zero only when requests fail; missed goals are reported, not fatal.
 *
 * This file is the entry: arguments, plan, the run in order, exit status. Each part is its own module
 * (latency.ts, binary.ts, throughput.ts, load.ts); report.ts judges the goals and print.ts prints the tables;
 * client.ts and child.ts are the HTTP client and server they share.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { saveModel } from '../../compiler/onnx/index.js';
import { buildCnn, buildMlp } from '../../models/samples.js';
import { setLogLevel } from '../../runtime/log.js';
import { binaryVsJson, probeModel } from './binary.js';
import type { BatchingConfig } from './child.js';
import { binaryCall, floats, jsonCall, round3 } from './client.js';
import { tinyLatency } from './latency.js';
import { loadTest } from './load.js';
import { printTables } from './print.js';
import { failedRequests, verdicts, type Measured, type Plan } from './report.js';
import { throughput, type ThroughputRow } from './throughput.js';

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
    'max-batch-size': { type: 'string', default: '16' },
    'max-queue-delay-ms': { type: 'string', default: '0' },
  },
});
const quick = values.quick || process.env.BENCH_QUICK === '1';
const BATCHING: BatchingConfig = Object.freeze({
  maxBatchSize: Number(values['max-batch-size']), // rows: two batches of 16 cover 32 clients
  maxQueueDelayMs: Number(values['max-queue-delay-ms']), // ms: DEFAULT_BATCHING's (0: batches form while the model is busy)
});
const PLAN: Plan = Object.freeze({
  tiny: { rounds: quick ? 4 : 20, perRound: quick ? 100 : 400, warmup: 200 }, // calls per subject
  image: { rounds: quick ? 3 : 10, perRound: quick ? 4 : 20, warmup: 3 },
  throughput: { clients: 32, warmupS: quick ? 0.5 : 1, rounds: quick ? 2 : 5, sliceS: quick ? 1 : 2 }, // s
  load: { connections: 64, seconds: quick ? 3 : 30 },
});
setLogLevel('warn');

async function run(dir: string): Promise<Measured> {
  const loadStart = loadavg()[0] ?? NaN;
  const paths = { mlp: join(dir, 'mlp.onnx'), cnn: join(dir, 'cnn.onnx'), probe: await probeModel(dir) };
  await saveModel(buildMlp().proto, paths.mlp);
  await saveModel(buildCnn().proto, paths.cnn);

  const latency = await tinyLatency(paths.mlp, dir, PLAN.tiny, BATCHING);
  const binary = await binaryVsJson(paths.probe, PLAN.image, BATCHING);
  const mlpCall = jsonCall('mlp', 'x', [1, 16], floats(16, 3));
  const cnnCall = binaryCall('cnn', 'image', [1, 3, 64, 64], floats(3 * 64 * 64, 4));
  const throughputs: ThroughputRow[] = [];
  for (const [label, path, call] of [
    ['sample MLP, JSON', paths.mlp, mlpCall],
    ['sample CNN 3×64×64, binary', paths.cnn, cnnCall],
  ] as const) {
    throughputs.push(...(await throughput(label, path, call, PLAN.throughput, BATCHING)));
  }
  const load = await loadTest(paths.mlp, mlpCall, PLAN.load, BATCHING);
  const host = {
    cpuModel: cpus()[0]?.model ?? 'unknown',
    cpus: cpus().length,
    node: process.version,
    loadavg_start: round3(loadStart),
    loadavg_end: round3(loadavg()[0] ?? NaN),
  };
  return { host, quick, batching: BATCHING, plan: PLAN, latency, binary, throughput: throughputs, load };
}

const dir = await mkdtemp(join(tmpdir(), 'outpost-bench-server-'));
let failures: string[] = [];
try {
  const measured = await run(dir);
  const report = { ...measured, goals: verdicts(measured) };
  failures = failedRequests(report);
  if (values.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  else printTables(report);
} finally {
  await rm(dir, { recursive: true, force: true });
}
if (failures.length > 0) {
  process.stderr.write(`bench/server/server.ts: requests failed:\n  ${failures.join('\n  ')}\n`);
  process.exitCode = 1;
}
