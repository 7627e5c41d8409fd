import type { SeenJob } from './job.js';
import type { PlannedDevice } from './plan.js';

/** What the simulated devices saw, for `fleet simulate`'s output at exit (a table, or this object with `--json`). */
export interface SimulationSummary {
  readonly devices: {
    readonly total: number;
    /** Connected when the summary was taken. */
    readonly online: number;
    /** Offline at the start (announced, then dark), and of those, how many came online later. */
    readonly offlineAtStart: number;
    readonly cameOnline: number;
    /** Devices that never got connected (the broker refused them, or it was unreachable). */
    readonly failedToStart: number;
  };
  readonly targets: Readonly<Record<string, number>>;
  readonly jobs: readonly JobSummary[];
  /** Per device: its target, whether it started offline, and each job's status and reason code. */
  readonly perDevice: readonly {
    readonly thing: string;
    readonly target: string;
    readonly offlineAtStart: boolean;
    readonly jobs: readonly { readonly jobId: string; readonly status: string; readonly reasonCode: string }[];
  }[];
  readonly errors: readonly { readonly thing: string; readonly error: string }[];
}

export interface JobSummary {
  readonly jobId: string;
  /** name@version, as the job document said. */
  readonly model: string;
  readonly devices: number;
  readonly succeeded: number;
  readonly failed: number;
  readonly rejected: number;
  /** Final updates the fleet refused (the job had been canceled or ended meanwhile). */
  readonly refused: number;
  /** Reason code → devices, failures and rejections only. */
  readonly reasons: Readonly<Record<string, number>>;
  /** From the first device's start to the last one's final update; seconds. */
  readonly spanSeconds: number;
  /** Per device, start to final update: median and slowest; seconds. */
  readonly p50Seconds: number;
  readonly maxSeconds: number;
  readonly bytesFetched: number;
}

const seconds = (ms: number): number => Number((ms / 1000).toFixed(2));

function summarizeJob(jobId: string, jobs: readonly (SeenJob & { readonly thing: string })[]): JobSummary {
  const reasons: Record<string, number> = {};
  for (const j of jobs) if (j.status !== 'SUCCEEDED') reasons[j.reasonCode] = (reasons[j.reasonCode] ?? 0) + 1;
  const durations = jobs.map((j) => j.endedMs - j.startedMs).sort((a, b) => a - b);
  const first = Math.min(...jobs.map((j) => j.startedMs));
  const last = Math.max(...jobs.map((j) => j.endedMs));
  const count = (status: SeenJob['status']) => jobs.filter((j) => j.status === status).length;
  const model = jobs[0] === undefined ? '?' : `${jobs[0].model}@${jobs[0].version}`;
  return {
    jobId,
    model,
    devices: new Set(jobs.map((j) => j.thing)).size,
    succeeded: count('SUCCEEDED'),
    failed: count('FAILED'),
    rejected: count('REJECTED'),
    refused: jobs.filter((j) => j.reportRefused !== undefined).length,
    reasons,
    spanSeconds: seconds(last - first),
    p50Seconds: seconds(durations[Math.floor((durations.length - 1) / 2)] ?? 0),
    maxSeconds: seconds(durations.at(-1) ?? 0),
    bytesFetched: jobs.reduce((sum, j) => sum + j.bytesFetched, 0),
  };
}

export function summarize(input: {
  readonly plan: readonly PlannedDevice[];
  readonly seen: readonly (SeenJob & { readonly thing: string })[];
  readonly online: number;
  readonly started: ReadonlySet<string>;
  readonly errors: readonly { readonly thing: string; readonly error: string }[];
}): SimulationSummary {
  const { plan, seen } = input;
  const targets: Record<string, number> = {};
  for (const d of plan) targets[d.target.profile] = (targets[d.target.profile] ?? 0) + 1;
  const byJob = new Map<string, (SeenJob & { thing: string })[]>();
  for (const j of seen) byJob.set(j.jobId, [...(byJob.get(j.jobId) ?? []), j]);
  const byThing = new Map<string, (SeenJob & { thing: string })[]>();
  for (const j of seen) byThing.set(j.thing, [...(byThing.get(j.thing) ?? []), j]);
  const offline = plan.filter((d) => d.offline);
  return {
    devices: {
      total: plan.length,
      online: input.online,
      offlineAtStart: offline.length,
      cameOnline: offline.filter((d) => input.started.has(d.thing)).length,
      failedToStart: plan.filter((d) => !d.offline && !input.started.has(d.thing)).length,
    },
    targets,
    jobs: [...byJob].map(([jobId, jobs]) => summarizeJob(jobId, jobs)),
    perDevice: plan.map((d) => ({
      thing: d.thing,
      target: d.target.profile,
      offlineAtStart: d.offline,
      jobs: (byThing.get(d.thing) ?? []).map((j) => ({ jobId: j.jobId, status: j.status, reasonCode: j.reasonCode })),
    })),
    errors: input.errors,
  };
}
