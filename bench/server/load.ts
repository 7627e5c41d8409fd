/**
 * server.ts, part 4: a load test with autocannon on a child server (child.ts) with the batching
 * scheduler, as `outpost serve` runs it: errors, latency, and the server's RSS before, during (peak) and after.
 */
import { createRequire } from 'node:module';
import { ok, round3, scrape, target, type Call } from './client.js';
import { startChild, type BatchingConfig } from './child.js';

export interface LoadPlan {
  readonly connections: number;
  readonly seconds: number; // s
}

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

export type LoadResult = Awaited<ReturnType<typeof loadTest>>;

/** `call` (a JSON request) against the model at `path`, `plan.connections` connections for `plan.seconds`. */
export async function loadTest(path: string, call: Call, plan: LoadPlan, batching: BatchingConfig) {
  const { connections, seconds } = plan;
  const child = await startChild({ model: path, scheduler: 'batching', batching });
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
