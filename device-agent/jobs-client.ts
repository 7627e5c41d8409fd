import { randomBytes } from 'node:crypto';
import { OutpostError } from '../runtime/errors.js';
import { logger } from '../runtime/log.js';
import {
  decodeJobsMessage,
  describeAcceptedSchema,
  encodeJobsMessage,
  jobsRejectedSchema,
  jobsTopics,
  notifyNextSchema,
  startNextAcceptedSchema,
  updateAcceptedSchema,
  type DeviceJobStatus,
  type JobExecution,
  type JobExecutionState,
  type JobsErrorCode,
  type StatusDetails,
} from './protocol/index.js';
import type { Transport } from './transport/types.js';

const log = logger('agent.jobs');

/** A Jobs request the service rejected: its AWS error code and, when it sent one, the execution's state. */
export class JobsRejectedError extends OutpostError {
  constructor(
    readonly jobsCode: JobsErrorCode,
    message: string,
    readonly executionState?: JobExecutionState,
  ) {
    super('DEPLOYMENT_INTERRUPTED', `IoT Jobs rejected the request: ${jobsCode}: ${message}`, {
      retryable: jobsCode === 'RequestThrottled' || jobsCode === 'InternalError',
    });
  }
}

export interface JobsClientOptions {
  readonly transport: Transport;
  readonly thing: string;
  /** A request unanswered this long is failed (the caller retries when online). */
  readonly timeoutMs?: number; // ms
}

const DEFAULT_TIMEOUT = 10_000; // ms

interface Waiter {
  resolve: (payload: Buffer, rejected: boolean) => void;
  /** Ends the wait early (a start-next superseded by a notification). */
  cancel: (error: Error) => void;
  readonly kind: 'start-next' | 'other';
}

/** A start-next that was sent before any service listened gets no reply; a notify-next says to ask again now. */
export class SupersededError extends Error {
  constructor() {
    super('a job notification arrived while start-next was unanswered');
  }
}

/**
 * The device side of the IoT Jobs MQTT API (developer guide, jobs-mqtt-api): StartNextPendingJobExecution,
 * DescribeJobExecution and UpdateJobExecution, correlated by clientToken, and NextJobExecutionChanged
 * notifications. Replies arrive on `…/accepted` and `…/rejected`; the wildcard subscriptions cover every job id.
 */
export class JobsClient {
  private readonly waiters = new Map<string, Waiter>();
  private readonly listeners = new Set<(execution: JobExecution | undefined) => void>();
  private off: (() => void) | undefined;

  constructor(private readonly options: JobsClientOptions) {}

  /** Subscribes to the replies and notifications; call again after a reconnect that lost the session. */
  async start(): Promise<void> {
    const { thing, transport } = this.options;
    this.off ??= transport.onMessage(({ topic, payload }) => this.dispatch(topic, payload));
    const base = `$aws/things/${thing}/jobs`;
    await transport.subscribe(
      [
        jobsTopics.notifyNext(thing),
        `${base}/start-next/accepted`,
        `${base}/start-next/rejected`,
        `${base}/+/get/accepted`,
        `${base}/+/get/rejected`,
        `${base}/+/update/accepted`,
        `${base}/+/update/rejected`,
      ],
      1,
    );
  }

  /** Stops listening and ends every outstanding request (the agent is stopping: nobody waits for replies). */
  stop(): void {
    this.off?.();
    this.off = undefined;
    for (const waiter of [...this.waiters.values()])
      waiter.cancel(new OutpostError('DEPLOYMENT_INTERRUPTED', 'agent stopping'));
  }

  onNextJob(listener: (execution: JobExecution | undefined) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Starts the next pending execution (QUEUED → IN_PROGRESS); undefined when nothing is pending. */
  async startNext(statusDetails?: StatusDetails): Promise<JobExecution | undefined> {
    const reply = await this.request(
      jobsTopics.startNext(this.options.thing),
      { ...(statusDetails === undefined ? {} : { statusDetails }) },
      'start-next',
    );
    const decoded = decodeJobsMessage(startNextAcceptedSchema, reply);
    if (!decoded.ok) throw new OutpostError('INTERNAL', `malformed start-next reply: ${decoded.message}`);
    return decoded.value.execution;
  }

  async describe(jobId: string): Promise<JobExecution | undefined> {
    const reply = await this.request(jobsTopics.describe(this.options.thing, jobId), { includeJobDocument: true });
    const decoded = decodeJobsMessage(describeAcceptedSchema, reply);
    if (!decoded.ok) throw new OutpostError('INTERNAL', `malformed describe reply: ${decoded.message}`);
    return decoded.value.execution;
  }

  /** UpdateJobExecution with `expectedVersion`; resolves with the new execution state. */
  async update(
    jobId: string,
    status: DeviceJobStatus,
    statusDetails: StatusDetails,
    expectedVersion?: number,
  ): Promise<JobExecutionState | undefined> {
    const reply = await this.request(jobsTopics.update(this.options.thing, jobId), {
      status,
      statusDetails,
      ...(expectedVersion === undefined ? {} : { expectedVersion }),
      includeJobExecutionState: true,
    });
    const decoded = decodeJobsMessage(updateAcceptedSchema, reply);
    if (!decoded.ok) throw new OutpostError('INTERNAL', `malformed update reply: ${decoded.message}`);
    return decoded.value.executionState;
  }

  private request(topic: string, body: object, kind: Waiter['kind'] = 'other'): Promise<Buffer> {
    const clientToken = randomBytes(12).toString('hex');
    const timeoutMs = this.options.timeoutMs ?? DEFAULT_TIMEOUT;
    return new Promise<Buffer>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(clientToken);
        reject(new OutpostError('TIMEOUT', `no reply on ${topic} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiters.set(clientToken, {
        kind,
        cancel: (error) => {
          clearTimeout(timer);
          this.waiters.delete(clientToken);
          reject(error);
        },
        resolve: (payload, rejected) => {
          clearTimeout(timer);
          this.waiters.delete(clientToken);
          if (!rejected) {
            resolve(payload);
            return;
          }
          const decoded = decodeJobsMessage(jobsRejectedSchema, payload);
          reject(
            decoded.ok
              ? new JobsRejectedError(decoded.value.code, decoded.value.message, decoded.value.executionState)
              : new JobsRejectedError('InvalidJson', decoded.message),
          );
        },
      });
      this.options.transport
        .publish(topic, encodeJobsMessage({ ...body, clientToken }), { qos: 1 })
        .catch((error: unknown) => {
          clearTimeout(timer);
          this.waiters.delete(clientToken);
          reject(error instanceof Error ? error : new Error(String(error)));
        });
    });
  }

  private dispatch(topic: string, payload: Buffer): void {
    const base = `$aws/things/${this.options.thing}/jobs/`;
    if (!topic.startsWith(base)) return;
    if (topic === jobsTopics.notifyNext(this.options.thing)) {
      const decoded = decodeJobsMessage(notifyNextSchema, payload);
      if (!decoded.ok) {
        log.warn({ reason: decoded.message }, 'malformed notify-next ignored');
        return;
      }
      if (decoded.value.execution !== undefined) {
        for (const waiter of [...this.waiters.values()])
          if (waiter.kind === 'start-next') waiter.cancel(new SupersededError());
      }
      for (const listener of this.listeners) listener(decoded.value.execution);
      return;
    }
    const rejected = topic.endsWith('/rejected');
    if (!rejected && !topic.endsWith('/accepted')) return;
    let token: unknown;
    try {
      token = (JSON.parse(payload.toString('utf8')) as { clientToken?: unknown }).clientToken;
    } catch {
      return;
    }
    if (typeof token === 'string') this.waiters.get(token)?.resolve(payload, rejected);
  }
}
