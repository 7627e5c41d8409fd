/**
 * server.ts, part 3: throughput with closed-loop clients, direct scheduler against dynamic batching, each in
 * its own child server (child.ts); mean batch size from the server's own metrics (GET /metrics).
 */
import { latencyStats } from '../../runtime/tuning/stats.js';
import { brief, closedLoop, round3, scrape, target, type Call, type Scrape } from './client.js';
import { startChild, type BatchingConfig, type SchedulerKind } from './child.js';

export interface ThroughputPlan {
  readonly clients: number;
  readonly warmupS: number; // s, per scheduler, untimed
  readonly rounds: number;
  readonly sliceS: number; // s, per scheduler and round
}

export type ThroughputRow = Awaited<ReturnType<typeof throughput>>[number];

/**
 * Both schedulers on one model, each in its own child server, both up at once; the load alternates between them in
 * slices (order swapped every round), so a neighbour's load on the shared cores hits both alike.
 */
export async function throughput(
  label: string,
  path: string,
  call: Call,
  plan: ThroughputPlan,
  batching: BatchingConfig,
) {
  const { clients, warmupS, rounds, sliceS } = plan;
  const schedulers = ['direct', 'batching'] as const satisfies readonly SchedulerKind[];
  const sides = await Promise.all(
    schedulers.map(async (scheduler) => {
      const child = await startChild({ model: path, scheduler, batching });
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
