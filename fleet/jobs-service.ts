import type { MqttClient } from 'mqtt';
import {
  type JobStatus,
  type JobsErrorCode,
  type StatusDetails,
  encodeJobsMessage,
  epochNow,
  isTerminal,
  jobDocumentBytes,
  MAX_JOB_DOCUMENT_BYTES,
  parseTopic,
  serviceFilters,
} from '../device-agent/protocol/index.js';
import { OutpostError } from '../runtime/errors.js';
import { logger } from '../runtime/log.js';
import { Inflight } from './inflight.js';
import { checkName } from './protocol-errors.js';
import {
  type ExecutionRecord,
  ExecutionTable,
  type JobsExecutions,
  notifyChanges,
  pendingSignature,
  toExecutionState,
} from './job-executions.js';
import { JOBS_HANDLERS, type JobsContext } from './jobs-handlers.js';

/**
 * Plays the AWS IoT Jobs service's part (Jobs device MQTT API, jobs-mqtt-api) for the jobs this fleet creates:
 * answers StartNextPendingJobExecution, UpdateJobExecution, DescribeJobExecution and GetPendingJobExecutions on their
 * accepted/rejected topics, publishes NextJobExecutionChanged (notify-next) and JobExecutionsChanged (notify) when a
 * thing's pending list changes, and times executions out. One handler per request kind, dispatched by topic.
 */
export interface JobsServiceOptions {
  readonly client: MqttClient;
  /** QoS of replies and notifications. */
  readonly qos?: 0 | 1; // default 1
  /** Clock, for tests. */
  readonly now?: () => number; // milliseconds since the epoch
}

export interface CreateJobOptions {
  readonly jobId: string;
  /** The job document (any JSON object up to 32 KB; fleet/deploy.ts passes Outpost's). */
  readonly document: Readonly<Record<string, unknown>>;
  readonly things: readonly string[];
  /**
   * Like CreateJob `timeoutConfig.inProgressTimeoutInMinutes`: an execution still IN_PROGRESS this long after it
   * started becomes TIMED_OUT. Unset: no timeout.
   */
  readonly inProgressTimeoutMs?: number; // milliseconds
}

export interface ExecutionEvent {
  readonly jobId: string;
  readonly thing: string;
  readonly executionNumber: number;
  readonly status: JobStatus;
  /** Undefined when the execution was just queued. */
  readonly previous?: JobStatus;
  readonly statusDetails: StatusDetails;
  readonly versionNumber: number;
}

export interface ExecutionView {
  readonly thing: string;
  readonly status: JobStatus;
  readonly statusDetails: StatusDetails;
  readonly versionNumber: number;
  readonly executionNumber: number;
}

const MINUTE_MS = 60_000;
const log = logger('fleet.jobs');

export class JobsService {
  private readonly table = new ExecutionTable();
  private readonly jobTimeouts = new Map<string, number>();
  private readonly stepDeadlines = new Map<ExecutionRecord, number>();
  /** When each execution went IN_PROGRESS, in milliseconds (startedAt on the wire is whole seconds). */
  private readonly startedMs = new Map<ExecutionRecord, number>();
  private readonly timers = new Map<ExecutionRecord, NodeJS.Timeout>();
  private readonly listeners = new Set<(event: ExecutionEvent) => void>();
  private readonly qos: 0 | 1;
  private readonly now: () => number;
  /** What the handlers (jobs-handlers.ts) may use of this service. */
  private readonly context: JobsContext;
  private readonly listener = (topic: string, payload: Buffer): void => {
    this.dispatch(topic, payload);
  };
  private readonly inflight = new Inflight();
  private started = false;
  private closing = false;
  private closed = false;

  constructor(private readonly options: JobsServiceOptions) {
    this.qos = options.qos ?? 1;
    this.now = options.now ?? Date.now;
    this.context = {
      executions: this.executionsView(),
      now: () => this.now(),
      changing: (thing, change) => this.changing(thing, change),
      reply: (topic, message) => this.reply(topic, message),
      reject: (topic, code, message, token, state) => this.reject(topic, code, message, token, state),
    };
  }

  /** Subscribes to the Jobs request topics of every thing. */
  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    this.options.client.on('message', this.listener);
    await this.options.client.subscribeAsync([...serviceFilters.jobRequests()], { qos: 1 });
  }

  /** Queues one execution per thing and notifies the things whose next pending execution changed. */
  async createJob(options: CreateJobOptions): Promise<void> {
    const jobId = checkName('job id', options.jobId);
    if (this.table.hasJob(jobId)) {
      throw new OutpostError('INVALID_ARGUMENT', `job ${jobId} already exists`, { details: { jobId } });
    }
    const bytes = jobDocumentBytes(options.document);
    if (bytes > MAX_JOB_DOCUMENT_BYTES) {
      throw new OutpostError(
        'JOB_DOCUMENT_TOO_LARGE',
        `job document is ${bytes} bytes; at most ${MAX_JOB_DOCUMENT_BYTES}`,
        {
          details: { bytes, limit: MAX_JOB_DOCUMENT_BYTES },
        },
      );
    }
    const things = [...new Set(options.things.map((thing) => checkName('thing name', thing)))];
    if (options.inProgressTimeoutMs !== undefined) this.jobTimeouts.set(jobId, options.inProgressTimeoutMs);
    for (const thing of things) {
      await this.changing(thing, () => {
        const record = this.table.add(jobId, thing, options.document, this.now());
        this.emit(record, undefined);
        return Promise.resolve();
      });
    }
    log.info({ jobId, things }, 'job created');
  }

  /** The executions of a job, one per thing. */
  executions(jobId: string): ExecutionView[] {
    return this.table.forJob(jobId).map((r) => ({
      thing: r.thingName,
      status: r.status,
      statusDetails: { ...r.statusDetails },
      versionNumber: r.versionNumber,
      executionNumber: r.executionNumber,
    }));
  }

  /**
   * Ends a pending execution on the service's side: CANCELED or REMOVED from QUEUED or IN_PROGRESS, TIMED_OUT from
   * IN_PROGRESS (JOB_TRANSITIONS). Returns false if the move is not legal (already terminal, or TIMED_OUT from QUEUED).
   */
  async endExecution(
    jobId: string,
    thing: string,
    status: 'CANCELED' | 'TIMED_OUT' | 'REMOVED',
    details?: StatusDetails,
  ): Promise<boolean> {
    const record = this.table.find(thing, jobId);
    if (record === undefined) return false;
    return this.changing(thing, () => {
      const result = this.table.transition(record, status, 'service', details, this.now());
      if (result.ok) this.applied(record, result.previous);
      return Promise.resolve(result.ok);
    });
  }

  onEvent(listener: (event: ExecutionEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Stops answering; timers are cleared, the client stays connected (it is the caller's). */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    this.options.client.removeListener('message', this.listener);
    // Requests being handled still get their replies: a device's final update is answered before the fleet goes.
    await this.inflight.settle();
    this.closed = true;
    for (const timer of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
    if (this.started && this.options.client.connected) {
      await this.options.client.unsubscribeAsync([...serviceFilters.jobRequests()]);
    }
  }

  // ── Handlers ──────────────────────────────────────────────────────────────────────────────────────────────

  private dispatch(topic: string, payload: Buffer): void {
    const parsed = parseTopic(topic);
    if (parsed?.api !== 'jobs' || parsed.reply !== undefined) return;
    const { operation, thing, jobId } = parsed;
    if (operation === 'notify' || operation === 'notify-next') return;
    const request = { thing, payload, ...(jobId === undefined ? {} : { jobId }) };
    this.inflight.track(JOBS_HANDLERS[operation](this.context, request), (error) => {
      log.error({ err: error, topic }, 'jobs request failed');
    });
  }

  // ── Changes, timers, notifications ────────────────────────────────────────────────────────────────────────

  /** Runs a change to a thing's executions, then publishes notify-next / notify if its pending list changed. */
  private async changing<T>(thing: string, change: () => Promise<T>): Promise<T> {
    const executions = this.context.executions;
    const before = await pendingSignature(executions, thing);
    const result = await change();
    await notifyChanges(executions, thing, before, (topic, message) => this.reply(topic, message), this.now());
    return result;
  }

  /** The table as the handlers see it: in memory nothing races, so a move never loses to another writer. */
  private executionsView(): JobsExecutions {
    const table = this.table;
    return {
      nextPending: (thing) => Promise.resolve(table.nextPending(thing)),
      pending: (thing) => Promise.resolve(table.pending(thing)),
      find: (thing, jobId, executionNumber) => Promise.resolve(table.find(thing, jobId, executionNumber)),
      transition: (view, to, details, stepTimeoutInMinutes) => {
        const record = table.find(view.thingName, view.jobId, view.executionNumber);
        if (record === undefined) {
          return Promise.resolve({
            ok: false,
            code: 'InvalidRequest',
            message: `execution ${view.executionNumber} is gone`,
          });
        }
        const result = table.transition(record, to, 'device', details, this.now());
        if (!result.ok) return Promise.resolve(result);
        if (to === 'IN_PROGRESS') this.setStepTimeout(record, stepTimeoutInMinutes);
        this.applied(record, result.previous);
        return Promise.resolve({ ok: true, record, previous: result.previous });
      },
    };
  }

  /** After a successful transition: (re)arm or clear the execution's timer, tell listeners. */
  private applied(record: ExecutionRecord, previous: JobStatus): void {
    if (previous === 'QUEUED' && record.status === 'IN_PROGRESS') this.startedMs.set(record, this.now());
    this.arm(record);
    this.emit(record, previous);
  }

  /** stepTimeoutInMinutes: a new step timer replaces the old; -1 cancels it; absent leaves it running. */
  private setStepTimeout(record: ExecutionRecord, minutes: number | undefined): void {
    if (minutes === undefined) return;
    if (minutes === -1) this.stepDeadlines.delete(record);
    else this.stepDeadlines.set(record, this.now() + minutes * MINUTE_MS);
  }

  /** One timer per IN_PROGRESS execution, for the earlier of its in-progress and step deadlines. */
  private arm(record: ExecutionRecord): void {
    const existing = this.timers.get(record);
    if (existing !== undefined) clearTimeout(existing);
    this.timers.delete(record);
    if (record.status !== 'IN_PROGRESS' || this.closed) {
      this.stepDeadlines.delete(record);
      return;
    }
    const jobTimeout = this.jobTimeouts.get(record.jobId);
    const deadlines = [
      ...(jobTimeout === undefined ? [] : [(this.startedMs.get(record) ?? this.now()) + jobTimeout]),
      ...(this.stepDeadlines.has(record) ? [this.stepDeadlines.get(record) ?? 0] : []),
    ];
    if (deadlines.length === 0) return;
    const delay = Math.max(0, Math.min(...deadlines) - this.now());
    const timer = setTimeout(() => {
      this.timers.delete(record);
      void this.endExecution(record.jobId, record.thingName, 'TIMED_OUT').catch((error: unknown) => {
        log.error({ err: error, jobId: record.jobId, thing: record.thingName }, 'timing out failed');
      });
    }, delay);
    timer.unref();
    this.timers.set(record, timer);
  }

  private emit(record: ExecutionRecord, previous: JobStatus | undefined): void {
    const event: ExecutionEvent = {
      jobId: record.jobId,
      thing: record.thingName,
      executionNumber: record.executionNumber,
      status: record.status,
      ...(previous === undefined ? {} : { previous }),
      statusDetails: { ...record.statusDetails },
      versionNumber: record.versionNumber,
    };
    log.info({ ...event }, isTerminal(record.status) ? 'execution ended' : 'execution changed');
    for (const listener of this.listeners) listener(event);
  }

  private async reject(
    topic: string,
    code: JobsErrorCode,
    message: string,
    clientToken: string | undefined,
    state?: ExecutionRecord,
  ): Promise<void> {
    log.debug({ topic, code }, message);
    await this.reply(topic, {
      code,
      message,
      ...(clientToken === undefined ? {} : { clientToken }),
      timestamp: epochNow(this.now()),
      ...(state === undefined ? {} : { executionState: toExecutionState(state) }),
    });
  }

  private async reply(topic: string, message: object): Promise<void> {
    if (this.closed || !this.options.client.connected) return;
    await this.options.client.publishAsync(topic, encodeJobsMessage(message), { qos: this.qos });
  }
}
