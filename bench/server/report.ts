/**
 * bench/server/server.ts's report: what one run measured (the shape --json prints), the verdict on each goal, and the
 * requests that failed. The tables printed without --json are bench/server/print.ts.
 */
import type { BinaryVsJson } from './binary.js';
import type { BatchingConfig } from './child.js';
import { round3, type RoundPlan } from './client.js';
import type { TinyLatency } from './latency.js';
import type { LoadPlan, LoadResult } from './load.js';
import type { ThroughputPlan, ThroughputRow } from './throughput.js';

export const GOALS = Object.freeze({ addedP50Ms: 0.15, binarySpeedup: 5, loadErrors: 0 });

/** How long each part runs: calls per subject for 1–2, clients and seconds for 3–4. */
export interface Plan {
  readonly tiny: RoundPlan;
  readonly image: RoundPlan;
  readonly throughput: ThroughputPlan;
  readonly load: LoadPlan;
}

export interface Host {
  readonly cpuModel: string;
  readonly cpus: number;
  readonly node: string;
  readonly loadavg_start: number;
  readonly loadavg_end: number;
}

/** One run's numbers, in the order --json prints them. */
export interface Measured {
  readonly host: Host;
  readonly quick: boolean;
  readonly batching: BatchingConfig;
  readonly plan: Plan;
  readonly latency: TinyLatency;
  readonly binary: BinaryVsJson;
  readonly throughput: readonly ThroughputRow[];
  readonly load: LoadResult;
}

export interface Verdict {
  readonly goal: string;
  readonly target: string;
  readonly measured: string;
  readonly verdict: string;
}

export type Report = Measured & { readonly goals: readonly Verdict[] };

export function verdicts(r: Measured): Verdict[] {
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
          goal: `batching vs direct, ${t.model}, ${r.plan.throughput.clients} clients`,
          target: 'report',
          measured: `${t.req_per_s} vs ${direct?.req_per_s ?? NaN} req/s (${ratio}×), batch ${t.mean_batch_rows}`,
          verdict: 'measured',
        };
      }),
    {
      goal: `load test errors (${r.plan.load.connections} connections, ${r.plan.load.seconds} s)`,
      target: `${GOALS.loadErrors}`,
      measured: `${loadErrors} (errors ${r.load.errors}, timeouts ${r.load.timeouts}, non-2xx ${r.load.non2xx})`,
      verdict: met(loadErrors <= GOALS.loadErrors),
    },
  ];
}

/** Requests that failed, one line each: the only outcome that fails the run (missed goals are reported, not fatal). */
export function failedRequests(r: Measured): string[] {
  return [
    ...r.throughput.filter((t) => t.errors > 0).map((t) => `${t.model} ${t.scheduler}: ${t.errors} errors`),
    // The server's own request counter must agree with what the clients saw answered: the metrics wiring works.
    ...r.throughput
      .filter((t) => t.metrics_requests !== t.requests)
      .map((t) => `${t.model} ${t.scheduler}: /metrics counted ${t.metrics_requests} requests, clients ${t.requests}`),
    ...(r.load.errors + r.load.timeouts + r.load.non2xx > 0
      ? [`load test: ${r.load.errors} errors, ${r.load.timeouts} timeouts, ${r.load.non2xx} non-2xx`]
      : []),
  ];
}
