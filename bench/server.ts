/**
 * The inference server's numbers ("Measured in a benchmark"):  npx tsx bench/server.ts [--quick] [--json]
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
 * Benches 1–2 run the server in this process; 3–4 run it in a child process (bench/server-child.ts) so that the
 * load generator and the server each get a core and the RSS is the server's alone. `--quick` (or BENCH_QUICK=1)
 * shortens every part. Exits non-zero only when requests fail; missed goals are reported, not fatal.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRequire } from 'node:module';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { GraphBuilder, saveModel } from '../compiler/onnx/index.js';
import { buildCnn, buildMlp, OPSET } from '../models/samples.js';
import { latencyStats } from '../runtime/bench/stats.js';
import { setLogLevel } from '../runtime/log.js';
import { loadModel } from '../runtime/model/load.js';
import type { Feeds } from '../runtime/model/model.js';
import {
  binaryCall,
  brief,
  closedLoop,
  firstOutput,
  floats,
  interleaved,
  jsonCall,
  ok,
  round3,
  sameAs,
  scrape,
  stat,
  target,
  type Call,
  type Scrape,
  type Target,
} from './server-client.js';
import { serve, startChild, type BatchingConfig, type SchedulerKind } from './server-child.js';

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
const PLAN = Object.freeze({
  tiny: { rounds: quick ? 4 : 20, perRound: quick ? 100 : 400, warmup: 200 }, // calls per subject
  image: { rounds: quick ? 3 : 10, perRound: quick ? 4 : 20, warmup: 3 },
  throughput: { clients: 32, warmupS: quick ? 0.5 : 1, rounds: quick ? 2 : 5, sliceS: quick ? 1 : 2 }, // s
  load: { connections: 64, seconds: quick ? 3 : 30 },
});
const GOALS = Object.freeze({ addedP50Ms: 0.15, binarySpeedup: 5, loadErrors: 0 });
setLogLevel('warn');

// ---- 1. Added latency on a tiny model ----

/**
 * The floor: a bare node:http server on 127.0.0.1 that reads the body and answers with fixed bytes (Outpost's own
 * reply to the same request), no parsing, no model. What is left above it is the Outpost server's own cost.
 */
async function bareServer(reply: Buffer): Promise<{ server: Server; url: string }> {
  const server = createServer({ keepAliveTimeout: 65_000 }, (req, res) => {
    req.on('data', () => undefined);
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': reply.length });
      res.end(reply);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

async function tinyLatency(mlpPath: string, dir: string) {
  const model = await loadModel(mlpPath, { warmup: 10 });
  const batchedModel = await loadModel(mlpPath, { warmup: 10 });
  const direct = await serve([model], 'direct', BATCHING, [{ tcp: true }, { socket: join(dir, 'outpost.sock') }]);
  const batched = await serve([batchedModel], 'batching', BATCHING, [{ tcp: true }]);
  try {
    const data = floats(16, 1);
    const feeds: Feeds = { x: { data, dims: [1, 16], type: 'float32' } };
    const service = direct.repository.service('mlp');
    if (service === undefined) throw new Error('mlp is not served');
    const [tcp, unix, batching] = [direct.urls[0], direct.urls[1], batched.urls[0]].map((u) => target(u ?? '', 1)) as [
      Target,
      Target,
      Target,
    ];
    const json = jsonCall('mlp', 'x', [1, 16], data);
    const binary = binaryCall('mlp', 'x', [1, 16], data);
    const expected = (await model.infer(feeds)).logits?.data as Float32Array;
    const reply = await ok(tcp, json);
    sameAs(expected, firstOutput(reply), 'MLP over HTTP JSON');
    const bare = await bareServer(reply.body);
    const floor = target(bare.url, 1);
    sameAs(expected, firstOutput(await ok(unix, binary)), 'MLP over HTTP binary');
    const stats = await interleaved(
      [
        { name: 'Model.infer', run: () => model.infer(feeds) },
        { name: 'ModelService.infer', run: () => service.infer(feeds) },
        { name: 'HTTP JSON, TCP', run: () => ok(tcp, json) },
        { name: 'HTTP JSON, unix socket', run: () => ok(unix, json) },
        { name: 'HTTP binary, TCP', run: () => ok(tcp, binary) },
        { name: 'bare node:http, TCP (floor)', run: () => ok(floor, json) },
      ],
      PLAN.tiny,
    );
    bare.server.closeAllConnections();
    await new Promise((resolve) => bare.server.close(resolve));
    // A lone request on the batching scheduler waits maxQueueDelayMs for company: measured apart, fewer calls.
    const lone = await interleaved([{ name: 'HTTP JSON, TCP, batching', run: () => ok(batching, json) }], {
      ...PLAN.tiny,
      perRound: Math.ceil(PLAN.tiny.perRound / 10),
    });
    for (const t of [tcp, unix, batching, floor]) t.agent.destroy();
    const base = stat(stats, 'Model.infer');
    const added = (name: string) => ({
      p50_ms: round3(stat(stats, name).p50 - base.p50),
      p99_ms: round3(stat(stats, name).p99 - base.p99),
    });
    return {
      model: 'sample MLP x[1,16]',
      subjects: Object.fromEntries([...stats, ...lone].map(([name, s]) => [name, brief(s)])),
      added_over_model_infer: {
        json_tcp: added('HTTP JSON, TCP'),
        json_unix: added('HTTP JSON, unix socket'),
        binary_tcp: added('HTTP binary, TCP'),
        node_http_floor: added('bare node:http, TCP (floor)'),
        service: added('ModelService.infer'),
        json_tcp_batching: {
          p50_ms: round3(stat(lone, 'HTTP JSON, TCP, batching').p50 - base.p50),
          p99_ms: round3(stat(lone, 'HTTP JSON, TCP, batching').p99 - base.p99),
        },
      },
    };
  } finally {
    await direct.close();
    await batched.close();
    await model.release();
    await batchedModel.release();
  }
}

// ---- 2. Binary against JSON on 1×3×224×224 ----

/** x FP32 [batch, 3, 224, 224] → mean FP32 [batch, 3]: an ImageNet-sized input, a cheap op. */
async function probeModel(dir: string): Promise<string> {
  const g = new GraphBuilder('probe');
  const x = g.input('x', 'float32', ['batch', 3, 224, 224]);
  g.output(g.nodeOutputs('ReduceMean', [x], ['mean'], { axes: [2, 3], keepdims: 0 })[0] ?? '', 'float32', ['batch', 3]);
  const path = join(dir, 'probe.onnx');
  await saveModel(g.build({ opsets: { '': OPSET } }), path);
  return path;
}

async function binaryVsJson(probePath: string) {
  const model = await loadModel(probePath, { warmup: 3 });
  const served = await serve([model], 'direct', BATCHING, [{ tcp: true }]);
  try {
    const dims = [1, 3, 224, 224];
    const data = floats(3 * 224 * 224, 2);
    const feeds: Feeds = { x: { data, dims, type: 'float32' } };
    const to = target(served.urls[0] ?? '', 1);
    const encode = await interleaved(
      [
        { name: 'encode JSON', run: () => Promise.resolve(jsonCall('probe', 'x', dims, data)) },
        { name: 'encode binary', run: () => Promise.resolve(binaryCall('probe', 'x', dims, data)) },
      ],
      { rounds: 1, perRound: PLAN.image.perRound, warmup: 1 },
    );
    const json = jsonCall('probe', 'x', dims, data);
    const binary = binaryCall('probe', 'x', dims, data);
    const expected = (await model.infer(feeds)).mean?.data as Float32Array;
    sameAs(expected, firstOutput(await ok(to, json)), 'probe over HTTP JSON');
    sameAs(expected, firstOutput(await ok(to, binary)), 'probe over HTTP binary');
    const stats = await interleaved(
      [
        { name: 'Model.infer', run: () => model.infer(feeds) },
        { name: 'HTTP JSON', run: () => ok(to, json) },
        { name: 'HTTP binary', run: () => ok(to, binary) },
      ],
      PLAN.image,
    );
    to.agent.destroy();
    return {
      model: 'ReduceMean x[1,3,224,224] → [1,3]',
      body_bytes: { json: json.body.length, binary: binary.body.length },
      subjects: Object.fromEntries([...stats, ...encode].map(([name, s]) => [name, brief(s)])),
      speedup_p50: round3(stat(stats, 'HTTP JSON').p50 / stat(stats, 'HTTP binary').p50),
    };
  } finally {
    await served.close();
    await model.release();
  }
}

// ---- 3. Throughput, direct against batching ----

/**
 * Both schedulers on one model, each in its own child server, both up at once; the load alternates between them in
 * slices (order swapped every round), so a neighbour's load on the shared cores hits both alike.
 */
async function throughput(label: string, path: string, call: Call) {
  const { clients, warmupS, rounds, sliceS } = PLAN.throughput;
  const schedulers = ['direct', 'batching'] as const satisfies readonly SchedulerKind[];
  const sides = await Promise.all(
    schedulers.map(async (scheduler) => {
      const child = await startChild({ model: path, scheduler, batching: BATCHING });
      return { scheduler, child, to: target(child.url, clients), samples: [] as number[], errors: 0, wallMs: 0 };
    }),
  );
  let firstError: string | undefined;
  try {
    for (const side of sides) await closedLoop(side.to, call, clients, warmupS);
    const before = await Promise.all(sides.map((side) => scrape(side.to)));
    for (let round = 0; round < rounds; round++) {
      for (const side of round % 2 === 0 ? sides : [...sides].reverse()) {
        const slice = await closedLoop(side.to, call, clients, sliceS);
        side.samples.push(...slice.samples);
        side.errors += slice.errors;
        side.wallMs += slice.wallMs;
        firstError ??= slice.firstError;
      }
    }
    const after = await Promise.all(sides.map((side) => scrape(side.to)));
    return sides.map((side, i) => {
      const [b, a] = [before[i], after[i]] as [Scrape, Scrape];
      const batches = a.batches - b.batches;
      return {
        model: label,
        scheduler: side.scheduler,
        clients,
        seconds: round3(side.wallMs / 1000),
        requests: side.samples.length,
        errors: side.errors,
        ...(side.errors > 0 && firstError !== undefined ? { first_error: firstError } : {}),
        req_per_s: Math.round((side.samples.length / side.wallMs) * 1000),
        ...brief(latencyStats(side.samples)),
        mean_batch_rows: batches > 0 ? round3((a.rows - b.rows) / batches) : 1,
        metrics_requests: a.requests - b.requests,
        metrics_errors: a.errors - b.errors,
      };
    });
  } finally {
    for (const side of sides) side.to.agent.destroy();
    await Promise.all(sides.map((side) => side.child.stop()));
  }
}

// ---- 4. Load test with autocannon ----

/** The part of autocannon's (v9, untyped) programmatic API used here. */
interface Histogram {
  readonly average: number;
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly max: number;
  readonly total: number;
}
interface AutocannonResult {
  readonly errors: number;
  readonly timeouts: number;
  readonly non2xx: number;
  readonly resets: number;
  readonly '2xx': number;
  readonly duration: number; // s
  readonly latency: Histogram; // ms, whole milliseconds (HdrHistogram, lowest discernible value 1)
  readonly requests: Histogram; // per second
  readonly statusCodeStats: Readonly<Record<string, { count: number }>>;
}
interface AutocannonOptions {
  readonly url: string;
  readonly method: 'POST';
  readonly body: Buffer;
  readonly headers: Readonly<Record<string, string>>;
  readonly connections: number;
  readonly duration: number; // s
}
type Autocannon = (
  options: AutocannonOptions,
  done: (error: Error | null, result: AutocannonResult) => void,
) => unknown;
const autocannon = createRequire(import.meta.url)('autocannon') as Autocannon;

async function loadTest(path: string, call: Call) {
  const { connections, seconds } = PLAN.load;
  const child = await startChild({ model: path, scheduler: 'batching', batching: BATCHING });
  const to = target(child.url, 1);
  try {
    await ok(to, call);
    const before = await child.memory(true);
    let rssPeak = before.rss;
    const poll = setInterval(() => {
      void child.memory().then((m) => (rssPeak = Math.max(rssPeak, m.rss)));
    }, 500);
    const result = await new Promise<AutocannonResult>((resolve, reject) =>
      autocannon(
        {
          url: `${child.url}${call.path}`,
          method: 'POST',
          body: call.body,
          headers: { 'content-type': 'application/json' },
          connections,
          duration: seconds,
        },
        (error, r) => (error === null ? resolve(r) : reject(error)),
      ),
    );
    clearInterval(poll);
    const after = await child.memory();
    const afterGc = await child.memory(true);
    const metrics = await scrape(to);
    const mb = (bytes: number) => Math.round(bytes / 2 ** 20);
    return {
      model: 'sample MLP x[1,16], JSON, batching scheduler',
      server: 'child process',
      connections,
      seconds: result.duration,
      requests_2xx: result['2xx'],
      errors: result.errors,
      timeouts: result.timeouts,
      non2xx: result.non2xx,
      resets: result.resets,
      status_codes: Object.fromEntries(Object.entries(result.statusCodeStats).map(([k, v]) => [k, v.count])),
      req_per_s: Math.round(result.requests.average),
      latency_p50_ms: result.latency.p50,
      latency_p99_ms: result.latency.p99,
      latency_max_ms: result.latency.max,
      latency_mean_ms: round3(result.latency.average),
      mean_batch_rows: metrics.batches > 0 ? round3(metrics.rows / metrics.batches) : 1,
      rss_mb: {
        start: mb(child.startRss),
        before: mb(before.rss),
        peak: mb(rssPeak),
        after: mb(after.rss),
        after_gc: mb(afterGc.rss),
      },
      heap_used_mb: { before: mb(before.heapUsed), after_gc: mb(afterGc.heapUsed) },
    };
  } finally {
    to.agent.destroy();
    await child.stop();
  }
}

// ---- Report ----

type Report = Awaited<ReturnType<typeof run>>;

function verdicts(r: Report) {
  const jsonAdded = r.latency.added_over_model_infer.json_tcp.p50_ms;
  const unixAdded = r.latency.added_over_model_infer.json_unix.p50_ms;
  const loadErrors = r.load.errors + r.load.timeouts + r.load.non2xx;
  const met = (yes: boolean) => (yes ? 'goal met' : 'goal not met');
  return [
    {
      goal: 'HTTP JSON added p50 over in-process (TCP / unix)',
      target: `≤ ${GOALS.addedP50Ms} ms`,
      measured: `${jsonAdded} / ${unixAdded} ms`,
      verdict: met(jsonAdded <= GOALS.addedP50Ms),
    },
    {
      goal: 'binary vs JSON, 1×3×224×224 FP32, p50',
      target: `≥ ${GOALS.binarySpeedup}×`,
      measured: `${r.binary.speedup_p50}×`,
      verdict: met(r.binary.speedup_p50 >= GOALS.binarySpeedup),
    },
    ...r.throughput
      .filter((t) => t.scheduler === 'batching')
      .map((t) => {
        const direct = r.throughput.find((d) => d.model === t.model && d.scheduler === 'direct');
        const ratio = direct === undefined ? NaN : round3(t.req_per_s / direct.req_per_s);
        return {
          goal: `batching vs direct, ${t.model}, ${PLAN.throughput.clients} clients`,
          target: 'report',
          measured: `${t.req_per_s} vs ${direct?.req_per_s ?? NaN} req/s (${ratio}×), batch ${t.mean_batch_rows}`,
          verdict: 'measured',
        };
      }),
    {
      goal: `load test errors (${PLAN.load.connections} connections, ${PLAN.load.seconds} s)`,
      target: `${GOALS.loadErrors}`,
      measured: `${loadErrors} (errors ${r.load.errors}, timeouts ${r.load.timeouts}, non-2xx ${r.load.non2xx})`,
      verdict: met(loadErrors <= GOALS.loadErrors),
    },
  ];
}

function table(header: readonly string[], rows: readonly (readonly (string | number)[])[]): string {
  const lines = [`| ${header.join(' | ')} |`, `|${header.map(() => ' --- ').join('|')}|`];
  for (const row of rows) lines.push(`| ${row.join(' | ')} |`);
  return lines.join('\n');
}

function printTables(r: Report & { goals: ReturnType<typeof verdicts> }): void {
  const out: string[] = [];
  const added = r.latency.added_over_model_infer;
  const addedOf: Record<string, { p50_ms: number; p99_ms: number } | undefined> = {
    'ModelService.infer': added.service,
    'HTTP JSON, TCP': added.json_tcp,
    'HTTP JSON, unix socket': added.json_unix,
    'HTTP binary, TCP': added.binary_tcp,
    'bare node:http, TCP (floor)': added.node_http_floor,
    'HTTP JSON, TCP, batching': added.json_tcp_batching,
  };
  out.push(`## 1. Added latency, ${r.latency.model} (in-process server, 1 client, keep-alive)\n`);
  out.push(
    table(
      ['subject', 'p50 ms', 'p99 ms', 'mean ms', 'added p50 ms', 'added p99 ms'],
      Object.entries(r.latency.subjects).map(([name, s]) => [
        name,
        s.p50_ms,
        s.p99_ms,
        s.mean_ms,
        addedOf[name]?.p50_ms ?? '–',
        addedOf[name]?.p99_ms ?? '–',
      ]),
    ),
  );
  out.push(`\n## 2. Binary vs JSON, ${r.binary.model} (in-process server, bodies encoded beforehand)\n`);
  out.push(
    table(
      ['subject', 'p50 ms', 'p99 ms', 'mean ms'],
      Object.entries(r.binary.subjects).map(([name, s]) => [name, s.p50_ms, s.p99_ms, s.mean_ms]),
    ),
  );
  out.push(
    `\nbody: JSON ${r.binary.body_bytes.json} bytes, binary ${r.binary.body_bytes.binary} bytes; ` +
      `binary ${r.binary.speedup_p50}× faster at p50`,
  );
  const { clients, rounds, sliceS } = PLAN.throughput;
  out.push(
    `\n## 3. Throughput, ${clients} closed-loop clients, ${rounds} × ${sliceS} s per scheduler, interleaved ` +
      '(servers in child processes)\n',
  );
  out.push(
    table(
      ['model', 'scheduler', 'req/s', 'p50 ms', 'p99 ms', 'mean batch rows', 'errors'],
      r.throughput.map((t) => [t.model, t.scheduler, t.req_per_s, t.p50_ms, t.p99_ms, t.mean_batch_rows, t.errors]),
    ),
  );
  out.push(`\nbatching: maxBatchSize ${BATCHING.maxBatchSize} rows, maxQueueDelayMs ${BATCHING.maxQueueDelayMs} ms`);
  const l = r.load;
  out.push(`\n## 4. Load test, autocannon, ${l.model} (server in a child process)\n`);
  out.push(
    table(
      [
        'connections',
        's',
        'req/s',
        'p50 ms',
        'p99 ms',
        'max ms',
        'errors',
        'timeouts',
        'non-2xx',
        'RSS MB start/before/peak/after/after GC',
        'heap MB before/after GC',
      ],
      [
        [
          l.connections,
          l.seconds,
          l.req_per_s,
          l.latency_p50_ms,
          l.latency_p99_ms,
          l.latency_max_ms,
          l.errors,
          l.timeouts,
          l.non2xx,
          `${l.rss_mb.start}/${l.rss_mb.before}/${l.rss_mb.peak}/${l.rss_mb.after}/${l.rss_mb.after_gc}`,
          `${l.heap_used_mb.before}/${l.heap_used_mb.after_gc}`,
        ],
      ],
    ),
  );
  out.push('\n## Goals\n');
  out.push(
    table(
      ['goal', 'target', 'measured', 'verdict'],
      r.goals.map((g) => [g.goal, g.target, g.measured, g.verdict]),
    ),
  );
  const h = r.host;
  out.push(
    `\n${h.cpuModel}, ${h.cpus} cpus, node ${h.node}; load average ${h.loadavg_start} at start, ${h.loadavg_end} at end` +
      (quick ? '; --quick run' : ''),
  );
  process.stdout.write(`${out.join('\n')}\n`);
}

async function run(dir: string) {
  const loadStart = loadavg()[0] ?? NaN;
  const paths = { mlp: join(dir, 'mlp.onnx'), cnn: join(dir, 'cnn.onnx'), probe: await probeModel(dir) };
  await saveModel(buildMlp().proto, paths.mlp);
  await saveModel(buildCnn().proto, paths.cnn);

  const latency = await tinyLatency(paths.mlp, dir);
  const binary = await binaryVsJson(paths.probe);
  const mlpCall = jsonCall('mlp', 'x', [1, 16], floats(16, 3));
  const cnnCall = binaryCall('cnn', 'image', [1, 3, 64, 64], floats(3 * 64 * 64, 4));
  const throughputs: Awaited<ReturnType<typeof throughput>> = [];
  for (const [label, path, call] of [
    ['sample MLP, JSON', paths.mlp, mlpCall],
    ['sample CNN 3×64×64, binary', paths.cnn, cnnCall],
  ] as const) {
    throughputs.push(...(await throughput(label, path, call)));
  }
  const load = await loadTest(paths.mlp, mlpCall);
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
  failures = [
    ...report.throughput.filter((t) => t.errors > 0).map((t) => `${t.model} ${t.scheduler}: ${t.errors} errors`),
    // The server's own request counter must agree with what the clients saw answered: the metrics wiring works.
    ...report.throughput
      .filter((t) => t.metrics_requests !== t.requests)
      .map((t) => `${t.model} ${t.scheduler}: /metrics counted ${t.metrics_requests} requests, clients ${t.requests}`),
    ...(report.load.errors + report.load.timeouts + report.load.non2xx > 0
      ? [`load test: ${report.load.errors} errors, ${report.load.timeouts} timeouts, ${report.load.non2xx} non-2xx`]
      : []),
  ];
  if (values.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  else printTables(report);
} finally {
  await rm(dir, { recursive: true, force: true });
}
if (failures.length > 0) {
  process.stderr.write(`bench/server.ts: requests failed:\n  ${failures.join('\n  ')}\n`);
  process.exitCode = 1;
}
