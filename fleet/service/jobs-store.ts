import { type JobStatus, type StatusDetails, epochNow, isTerminal } from '../../device-agent/protocol/index.js';
import { isOutpostError } from '../../runtime/errors.js';
import { type ExecutionMove, type ExecutionView, type JobsExecutions, planTransition } from '../job-executions.js';
import type { ArtifactFit, ExecutionChange, ExecutionRecord, FleetStore } from '../store/index.js';

/**
 * The Jobs handlers' view of executions in the fleet database. A thing sees only executions it can start: those
 * whose artifact has been chosen (a multi-target deployment waits for the thing's reported target). Job documents
 * are immutable per (deployment, artifact), so the cache of them is safe to keep and cheap to lose.
 */
const MINUTE_MS = 60_000;
const DOCUMENT_CACHE_ENTRIES = 256;

export type ExecutionListener = (execution: ExecutionRecord, previous: JobStatus | undefined) => void;

export class StoreExecutions implements JobsExecutions {
  private readonly documents = new Map<string, Readonly<Record<string, unknown>>>();
  private readonly timeouts = new Map<string, number | null>();

  constructor(
    private readonly store: FleetStore,
    private readonly now: () => number,
    private readonly onChange: ExecutionListener = () => undefined,
  ) {}

  async nextPending(thing: string): Promise<ExecutionView | undefined> {
    const { inProgress, queued } = await this.pending(thing);
    return inProgress[0] ?? queued[0];
  }

  async pending(thing: string): Promise<{ inProgress: ExecutionView[]; queued: ExecutionView[] }> {
    const startable = (await this.store.thingExecutions(thing, { pending: true })).filter(
      (e) => e.artifact !== undefined,
    );
    const views = await Promise.all(startable.map((e) => this.view(e)));
    return {
      inProgress: views.filter((v) => v.status === 'IN_PROGRESS'),
      queued: views.filter((v) => v.status === 'QUEUED'),
    };
  }

  async find(thing: string, jobId: string, executionNumber?: number): Promise<ExecutionView | undefined> {
    const record = await this.store.findExecution(thing, jobId, executionNumber);
    return record === undefined ? undefined : this.view(record);
  }

  /** A device's move (UpdateJobExecution, StartNextPendingJobExecution). */
  async transition(
    view: ExecutionView,
    to: JobStatus,
    details: StatusDetails | undefined,
    stepTimeoutInMinutes: number | undefined,
  ): Promise<ExecutionMove> {
    const plan = planTransition(view, to, 'device', details);
    if (!plan.ok) return plan;
    const nowMs = this.now();
    const starting = view.status === 'QUEUED' && to === 'IN_PROGRESS';
    const startedMs = starting || (view.startedAt === undefined && to === 'IN_PROGRESS') ? nowMs : undefined;
    const timeout = await this.inProgressTimeout(view.jobId);
    // The rollback target: what the agent says it ran before, else (when it starts) what the registry saw active.
    const previousVersion =
      plan.statusDetails.previousVersion ?? (starting ? await this.activeVersion(view) : undefined);
    const change: ExecutionChange = {
      status: to,
      statusDetails: plan.statusDetails,
      nowMs,
      ...(startedMs === undefined ? {} : { startedMs }),
      ...(previousVersion === undefined ? {} : { previousVersion }),
      // The job's in-progress timer starts when the execution does (timeoutConfig.inProgressTimeoutInMinutes).
      ...(starting && timeout !== null ? { deadlineMs: nowMs + timeout } : {}),
      // stepTimeoutInMinutes: a new step timer replaces the old; -1 cancels it; absent leaves it running.
      ...(to !== 'IN_PROGRESS' || stepTimeoutInMinutes === -1
        ? { stepDeadlineMs: null }
        : stepTimeoutInMinutes === undefined
          ? {}
          : { stepDeadlineMs: nowMs + stepTimeoutInMinutes * MINUTE_MS }),
      ...(isTerminal(to) ? { deadlineMs: null } : {}),
      countAttempt: starting,
      event: {
        type: `execution.${to.toLowerCase()}`,
        deploymentId: view.jobId,
        thing: view.thingName,
        data: { details: plan.statusDetails },
      },
    };
    return this.apply(view, change);
  }

  /** The service's own move (TIMED_OUT, CANCELED): conditional like any other. */
  async end(record: ExecutionRecord, to: 'TIMED_OUT' | 'CANCELED', details: StatusDetails): Promise<ExecutionMove> {
    const view = await this.view(record);
    const plan = planTransition(view, to, 'service', details);
    if (!plan.ok) return plan;
    const nowMs = this.now();
    return this.apply(view, {
      status: to,
      statusDetails: plan.statusDetails,
      nowMs,
      deadlineMs: null,
      stepDeadlineMs: null,
      event: {
        type: `execution.${to.toLowerCase()}`,
        deploymentId: view.jobId,
        thing: view.thingName,
        data: { details },
      },
    });
  }

  /** Chooses the artifact of an execution that waited for its thing's target (or rejects it, saying why). */
  async resolve(
    record: ExecutionRecord,
    choice: { artifact: string; fit: ArtifactFit } | { rejected: StatusDetails },
  ): Promise<ExecutionRecord | undefined> {
    const nowMs = this.now();
    const change: ExecutionChange =
      'artifact' in choice
        ? { status: 'QUEUED', statusDetails: record.statusDetails, nowMs, artifact: choice.artifact, fit: choice.fit }
        : {
            status: 'REJECTED',
            statusDetails: { ...record.statusDetails, ...choice.rejected },
            nowMs,
            event: {
              type: 'execution.rejected',
              deploymentId: record.jobId,
              thing: record.thing,
              data: { details: choice.rejected },
            },
          };
    try {
      const moved = await this.store.transitionExecution(record.executionNumber, record.versionNumber, change);
      this.onChange(moved, record.status);
      return moved;
    } catch (error) {
      if (isOutpostError(error, 'STORE_CONFLICT')) return undefined; // another worker resolved it first
      throw error;
    }
  }

  private async apply(view: ExecutionView, change: ExecutionChange): Promise<ExecutionMove> {
    try {
      const moved = await this.store.transitionExecution(view.executionNumber, view.versionNumber, change);
      this.onChange(moved, view.status);
      return { ok: true, record: await this.view(moved), previous: view.status };
    } catch (error) {
      if (!isOutpostError(error, 'STORE_CONFLICT')) throw error;
      const current = error.details.current as ExecutionRecord;
      return {
        ok: false,
        code: 'VersionMismatch',
        message: `the execution moved to version ${current.versionNumber} meanwhile`,
        current: await this.view(current),
      };
    }
  }

  private async activeVersion(view: ExecutionView): Promise<string | undefined> {
    const model = (view.document.model as { name?: unknown } | undefined)?.name;
    if (typeof model !== 'string') return undefined;
    const thing = await this.store.getThing(view.thingName);
    return thing?.models.find((m) => m.model === model && m.role !== 'shadow')?.version;
  }

  private async inProgressTimeout(jobId: string): Promise<number | null> {
    let timeout = this.timeouts.get(jobId);
    if (timeout === undefined) {
      const deployment = await this.store.getDeployment(jobId);
      timeout = deployment?.options.inProgressTimeoutMs ?? null;
      if (this.timeouts.size > DOCUMENT_CACHE_ENTRIES) this.timeouts.clear();
      this.timeouts.set(jobId, timeout);
    }
    return timeout;
  }

  async view(record: ExecutionRecord): Promise<ExecutionView> {
    const document = record.artifact === undefined ? {} : await this.document(record.jobId, record.artifact);
    return {
      jobId: record.jobId,
      thingName: record.thing,
      executionNumber: record.executionNumber,
      document,
      queuedAt: epochNow(record.queuedMs),
      status: record.status,
      statusDetails: record.statusDetails,
      ...(record.startedMs === undefined ? {} : { startedAt: epochNow(record.startedMs) }),
      lastUpdatedAt: epochNow(record.lastUpdatedMs),
      versionNumber: record.versionNumber,
    };
  }

  private async document(jobId: string, artifact: string): Promise<Readonly<Record<string, unknown>>> {
    const key = `${jobId}\n${artifact}`;
    let document = this.documents.get(key);
    if (document === undefined) {
      document = (await this.store.getDocument(jobId, artifact)) ?? {};
      if (this.documents.size >= DOCUMENT_CACHE_ENTRIES)
        this.documents.delete(this.documents.keys().next().value ?? '');
      this.documents.set(key, document);
    }
    return document;
  }
}
