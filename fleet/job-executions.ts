import {
  type JobExecution,
  type JobExecutionState,
  type JobExecutionSummary,
  type JobStatus,
  type StatusDetails,
  type TransitionActor,
  STATUS_DETAILS_MAX_PAIRS,
  allowedTransitions,
  canTransition,
  epochNow,
  isPending,
  isTerminal,
  jobsTopics,
  mergeStatusDetails,
} from '../device-agent/protocol/index.js';

/**
 * The job executions the fleet's jobs service owns, per thing, with AWS IoT Jobs semantics and no I/O: the service
 * (jobs-service.ts) turns MQTT requests into calls here and publishes what changed. Rules, from the Jobs device MQTT
 * API (jobs-mqtt-api) and the execution lifecycle (iot-jobs-lifecycle):
 * - the next pending execution is the oldest IN_PROGRESS one, else the oldest QUEUED one;
 * - every change increments `versionNumber` (JobExecutionState: "incremented each time they are updated");
 * - status moves follow JOB_TRANSITIONS; nothing leaves a terminal status;
 * - statusDetails given with a change are laid over the current ones ("If not specified, the statusDetails are
 *   unchanged"), and the result holds at most 10 pairs.
 */
/** An execution as the Jobs handlers read it, wherever it is kept (this table, or the fleet's database). */
export interface ExecutionView {
  readonly jobId: string;
  readonly thingName: string;
  readonly executionNumber: number;
  readonly document: Readonly<Record<string, unknown>>;
  readonly queuedAt: number; // seconds since the epoch
  readonly status: JobStatus;
  readonly statusDetails: StatusDetails;
  readonly startedAt?: number; // seconds since the epoch
  readonly lastUpdatedAt: number; // seconds since the epoch
  readonly versionNumber: number;
}

/** Where the Jobs handlers (jobs-handlers.ts) find and move executions. */
export type ExecutionMove =
  | { ok: true; record: ExecutionView; previous: JobStatus }
  | { ok: false; code: 'InvalidStateTransition' | 'InvalidRequest'; message: string }
  /** Another writer moved the execution first: `current` is how it now stands. */
  | { ok: false; code: 'VersionMismatch'; message: string; current: ExecutionView };

export interface JobsExecutions {
  /** StartNextPendingJobExecution's order: the oldest IN_PROGRESS, else the oldest QUEUED execution. */
  nextPending(thing: string): Promise<ExecutionView | undefined>;
  pending(thing: string): Promise<{ inProgress: ExecutionView[]; queued: ExecutionView[] }>;
  find(thing: string, jobId: string, executionNumber?: number): Promise<ExecutionView | undefined>;
  /** Moves `record` (at its versionNumber) for the device; stepTimeoutInMinutes as the request gave it. */
  transition(
    record: ExecutionView,
    to: JobStatus,
    details: StatusDetails | undefined,
    stepTimeoutInMinutes: number | undefined,
  ): Promise<ExecutionMove>;
}

export interface ExecutionRecord {
  readonly jobId: string;
  readonly thingName: string;
  readonly executionNumber: number;
  readonly document: Readonly<Record<string, unknown>>;
  readonly queuedAt: number; // seconds since the epoch
  status: JobStatus;
  statusDetails: StatusDetails;
  startedAt?: number; // seconds since the epoch
  lastUpdatedAt: number; // seconds since the epoch
  versionNumber: number;
}

export type TransitionResult =
  { ok: true; previous: JobStatus } | { ok: false; code: 'InvalidStateTransition' | 'InvalidRequest'; message: string };

export type PlannedTransition =
  | { ok: true; status: JobStatus; statusDetails: StatusDetails }
  | { ok: false; code: 'InvalidStateTransition' | 'InvalidRequest'; message: string };

/**
 * The rules of one move, with no I/O: legal for `actor` (JOB_TRANSITIONS), details laid over the current ones, at
 * most 10 pairs once merged. The caller applies it (in memory, or as a conditional UPDATE).
 */
export function planTransition(
  record: ExecutionView,
  to: JobStatus,
  actor: TransitionActor,
  details: StatusDetails | undefined,
): PlannedTransition {
  const previous = record.status;
  if (!canTransition(previous, to, actor)) {
    const allowed = allowedTransitions(previous, actor);
    return {
      ok: false,
      code: 'InvalidStateTransition',
      message: isTerminal(previous)
        ? `execution ${record.executionNumber} of job ${record.jobId} is ${previous}, a terminal status`
        : `cannot move from ${previous} to ${to}; allowed: ${allowed.join(', ') || 'none'}`,
    };
  }
  const merged = mergeStatusDetails(record.statusDetails, details);
  if (Object.keys(merged).length > STATUS_DETAILS_MAX_PAIRS) {
    return {
      ok: false,
      code: 'InvalidRequest',
      message: `statusDetails would hold ${Object.keys(merged).length} pairs; at most ${STATUS_DETAILS_MAX_PAIRS}`,
    };
  }
  return { ok: true, status: to, statusDetails: merged };
}

export class ExecutionTable {
  private readonly byThing = new Map<string, ExecutionRecord[]>();
  private nextExecutionNumber = 1;

  /** Queues an execution of `jobId` on `thing`. A job has at most one execution per thing. */
  add(jobId: string, thing: string, document: Readonly<Record<string, unknown>>, nowMs: number): ExecutionRecord {
    const list = this.byThing.get(thing) ?? [];
    const now = epochNow(nowMs);
    const record: ExecutionRecord = {
      jobId,
      thingName: thing,
      executionNumber: this.nextExecutionNumber++,
      document,
      queuedAt: now,
      status: 'QUEUED',
      statusDetails: {},
      lastUpdatedAt: now,
      versionNumber: 1,
    };
    list.push(record);
    this.byThing.set(thing, list);
    return record;
  }

  /** The execution of `jobId` on `thing` (a given execution number, or the latest). */
  find(thing: string, jobId: string, executionNumber?: number): ExecutionRecord | undefined {
    const list = this.byThing.get(thing) ?? [];
    for (let i = list.length - 1; i >= 0; i--) {
      const record = list[i];
      if (record?.jobId !== jobId) continue;
      if (executionNumber === undefined || record.executionNumber === executionNumber) return record;
    }
    return undefined;
  }

  /** StartNextPendingJobExecution's order: "Any job executions with status IN_PROGRESS are returned first", then by creation. */
  nextPending(thing: string): ExecutionRecord | undefined {
    const list = this.byThing.get(thing) ?? [];
    return list.find((r) => r.status === 'IN_PROGRESS') ?? list.find((r) => r.status === 'QUEUED');
  }

  pending(thing: string): { inProgress: ExecutionRecord[]; queued: ExecutionRecord[] } {
    const list = this.byThing.get(thing) ?? [];
    return {
      inProgress: list.filter((r) => r.status === 'IN_PROGRESS'),
      queued: list.filter((r) => r.status === 'QUEUED'),
    };
  }

  forJob(jobId: string): ExecutionRecord[] {
    return [...this.byThing.values()].flatMap((list) => list.filter((r) => r.jobId === jobId));
  }

  hasJob(jobId: string): boolean {
    return this.forJob(jobId).length > 0;
  }

  /**
   * Moves `record` to `to` on behalf of `actor`, merging `details`; the version goes up by one. IN_PROGRESS →
   * IN_PROGRESS is legal for the device (a progress report).
   */
  transition(
    record: ExecutionRecord,
    to: JobStatus,
    actor: TransitionActor,
    details: StatusDetails | undefined,
    nowMs: number,
  ): TransitionResult {
    const previous = record.status;
    const plan = planTransition(record, to, actor, details);
    if (!plan.ok) return plan;
    const merged = plan.statusDetails;
    const now = epochNow(nowMs);
    record.status = to;
    record.statusDetails = merged;
    if (to === 'IN_PROGRESS') record.startedAt ??= now;
    record.lastUpdatedAt = now;
    record.versionNumber++;
    return { ok: true, previous };
  }
}

/** The wire forms (jobs-mqtt-https-api, "Jobs device MQTT and HTTPS data types"). */
export function toExecution(record: ExecutionView, includeJobDocument = true): JobExecution {
  return {
    jobId: record.jobId,
    thingName: record.thingName,
    ...(includeJobDocument ? { jobDocument: { ...record.document } } : {}),
    status: record.status,
    ...(Object.keys(record.statusDetails).length > 0 ? { statusDetails: { ...record.statusDetails } } : {}),
    queuedAt: record.queuedAt,
    ...(record.startedAt === undefined ? {} : { startedAt: record.startedAt }),
    lastUpdatedAt: record.lastUpdatedAt,
    versionNumber: record.versionNumber,
    executionNumber: record.executionNumber,
  };
}

export function toExecutionState(record: ExecutionView): JobExecutionState {
  return {
    status: record.status,
    ...(Object.keys(record.statusDetails).length > 0 ? { statusDetails: { ...record.statusDetails } } : {}),
    versionNumber: record.versionNumber,
  };
}

export function toSummary(record: ExecutionView): JobExecutionSummary {
  return {
    jobId: record.jobId,
    queuedAt: record.queuedAt,
    ...(record.startedAt === undefined ? {} : { startedAt: record.startedAt }),
    lastUpdatedAt: record.lastUpdatedAt,
    versionNumber: record.versionNumber,
    executionNumber: record.executionNumber,
  };
}

/** What a thing's pending list looks like, to tell whether notify / notify-next must be published after a change. */
export async function pendingSignature(
  executions: Pick<JobsExecutions, 'nextPending' | 'pending'>,
  thing: string,
): Promise<{ next: string; pending: string }> {
  const next = await executions.nextPending(thing);
  const { inProgress, queued } = await executions.pending(thing);
  const key = (r: ExecutionView): string => `${r.jobId}#${r.executionNumber}`;
  return {
    next: next === undefined ? '' : key(next),
    // JobExecutionsChanged: "whenever a job execution is added to or removed from the list of pending job executions".
    pending: [...inProgress, ...queued]
      .filter((r) => isPending(r.status))
      .map(key)
      .sort()
      .join(','),
  };
}

/**
 * Publishes NextJobExecutionChanged (notify-next) and JobExecutionsChanged (notify) for `thing` if its pending list
 * moved since `before` (or always, with `force`, for a thing that just came online).
 */
export async function notifyChanges(
  executions: Pick<JobsExecutions, 'nextPending' | 'pending'>,
  thing: string,
  before: { next: string; pending: string } | undefined,
  reply: (topic: string, message: object) => Promise<void>,
  nowMs: number,
): Promise<void> {
  const after = await pendingSignature(executions, thing);
  const timestamp = epochNow(nowMs);
  if (before === undefined || after.next !== before.next) {
    const next = await executions.nextPending(thing);
    await reply(jobsTopics.notifyNext(thing), { ...(next ? { execution: toExecution(next) } : {}), timestamp });
  }
  if (before === undefined || after.pending !== before.pending) {
    const { inProgress, queued } = await executions.pending(thing);
    const jobs = {
      ...(inProgress.length > 0 ? { IN_PROGRESS: inProgress.map(toSummary) } : {}),
      ...(queued.length > 0 ? { QUEUED: queued.map(toSummary) } : {}),
    };
    await reply(jobsTopics.notify(thing), { jobs, timestamp });
  }
}
