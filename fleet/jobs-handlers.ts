import {
  type JobsErrorCode,
  decodeJobsMessage,
  describeRequestSchema,
  epochNow,
  getPendingRequestSchema,
  jobsTopics,
  NEXT_JOB_ID,
  startNextRequestSchema,
  updateRequestSchema,
} from '../device-agent/protocol/index.js';
import { type ExecutionView, type JobsExecutions, toExecution, toExecutionState, toSummary } from './job-executions.js';

export type { ExecutionMove, JobsExecutions } from './job-executions.js';

/**
 * One handler per Jobs device MQTT API request (jobs-mqtt-api), dispatched by topic. Handlers decide and reply; where
 * the executions live is behind JobsExecutions: in memory for the one-shot `outpost deploy` (jobs-service.ts), in the
 * database for `outpost fleet serve` (service/jobs-store.ts). Every transition is conditional on the version the
 * handler read, so two workers answering for one thing never both apply a change: the loser re-reads and decides
 * again, or, when the device named `expectedVersion`, answers VersionMismatch as IoT Jobs does.
 */
export interface JobsRequest {
  readonly thing: string;
  /** From the topic: a job id, or `$next` (DescribeJobExecution only). */
  readonly jobId?: string;
  readonly payload: Buffer;
}

export interface JobsContext {
  readonly executions: JobsExecutions;
  now(): number; // milliseconds since the epoch
  /** Runs a change to a thing's executions, then publishes notify-next / notify if its pending list changed. */
  changing<T>(thing: string, change: () => Promise<T>): Promise<T>;
  reply(topic: string, message: object): Promise<void>;
  reject(topic: string, code: JobsErrorCode, message: string, token?: string, state?: ExecutionView): Promise<void>;
}

export type JobsOperationName = 'start-next' | 'get-pending' | 'describe' | 'update';
type Handler = (ctx: JobsContext, request: JobsRequest) => Promise<void>;

/** Re-reads after a lost conditional update before answering InternalError: concurrent writers are few. */
export const MAX_CONFLICT_RETRIES = 5;

const token = (clientToken: string | undefined): { clientToken?: string } =>
  clientToken === undefined ? {} : { clientToken };

/**
 * StartNextPendingJobExecution: "If the next pending job execution is QUEUED, its state changes to IN_PROGRESS and
 * the job execution's status details are set as specified"; "If the next pending job execution is already
 * IN_PROGRESS, its status details are not changed"; "If no job executions are pending, the response does not include
 * the execution field".
 */
const startNext: Handler = async (ctx, { thing, payload }) => {
  const rejected = jobsTopics.startNextRejected(thing);
  const request = decodeJobsMessage(startNextRequestSchema, payload);
  if (!request.ok) return ctx.reject(rejected, request.code, request.message, request.clientToken);
  const { statusDetails, stepTimeoutInMinutes, clientToken } = request.value;
  const outcome = await ctx.changing(thing, async () => {
    for (let attempt = 0; attempt <= MAX_CONFLICT_RETRIES; attempt++) {
      const next = await ctx.executions.nextPending(thing);
      if (next?.status !== 'QUEUED') return { execution: next };
      const result = await ctx.executions.transition(next, 'IN_PROGRESS', statusDetails, stepTimeoutInMinutes);
      if (result.ok) return { execution: result.record };
      if (result.code !== 'VersionMismatch') return { failure: result };
    }
    return { failure: { code: 'InternalError' as const, message: 'the execution kept changing; ask again' } };
  });
  if (outcome.failure !== undefined) {
    return ctx.reject(rejected, outcome.failure.code, outcome.failure.message, clientToken);
  }
  await ctx.reply(jobsTopics.startNextAccepted(thing), {
    ...(outcome.execution === undefined ? {} : { execution: toExecution(outcome.execution) }),
    timestamp: epochNow(ctx.now()),
    ...token(clientToken),
  });
};

/** GetPendingJobExecutions: "inProgressJobs and queuedJobs return a list of JobExecutionSummary objects". */
const getPending: Handler = async (ctx, { thing, payload }) => {
  const request = decodeJobsMessage(getPendingRequestSchema, payload);
  if (!request.ok) {
    return ctx.reject(jobsTopics.getPendingRejected(thing), request.code, request.message, request.clientToken);
  }
  const { inProgress, queued } = await ctx.executions.pending(thing);
  await ctx.reply(jobsTopics.getPendingAccepted(thing), {
    inProgressJobs: inProgress.map(toSummary),
    queuedJobs: queued.map(toSummary),
    timestamp: epochNow(ctx.now()),
    ...token(request.value.clientToken),
  });
};

/**
 * DescribeJobExecution. `$next` describes the next pending execution and, with none, answers without `execution`
 * (as StartNextPendingJobExecution does); a named job with no execution on the thing is ResourceNotFound.
 */
const describe: Handler = async (ctx, { thing, jobId = NEXT_JOB_ID, payload }) => {
  const rejected = jobsTopics.describeRejected(thing, jobId);
  const request = decodeJobsMessage(describeRequestSchema, payload);
  if (!request.ok) return ctx.reject(rejected, request.code, request.message, request.clientToken);
  const { executionNumber, includeJobDocument, clientToken } = request.value;
  const record =
    jobId === NEXT_JOB_ID
      ? await ctx.executions.nextPending(thing)
      : await ctx.executions.find(thing, jobId, executionNumber);
  if (record === undefined && jobId !== NEXT_JOB_ID) {
    return ctx.reject(rejected, 'ResourceNotFound', `no execution of job ${jobId} on ${thing}`, clientToken);
  }
  await ctx.reply(jobsTopics.describeAccepted(thing, jobId), {
    // "Unless set to false, the response contains the job document."
    ...(record === undefined ? {} : { execution: toExecution(record, includeJobDocument ?? true) }),
    timestamp: epochNow(ctx.now()),
    ...token(clientToken),
  });
};

/**
 * UpdateJobExecution, checked in this order: the execution exists on this thing (ResourceNotFound: a device cannot
 * report for a job it does not own); `expectedVersion` matches ("the update is rejected with a VersionMismatch error,
 * and an ErrorResponse that contains the current job execution status data"); the move is legal
 * (InvalidStateTransition, with executionState too); statusDetails stay within 10 pairs once merged (InvalidRequest).
 */
const update: Handler = async (ctx, { thing, jobId = '', payload }) => {
  const rejected = jobsTopics.updateRejected(thing, jobId);
  const request = decodeJobsMessage(updateRequestSchema, payload);
  if (!request.ok) return ctx.reject(rejected, request.code, request.message, request.clientToken);
  const body = request.value;
  type Outcome =
    { ok: true; record: ExecutionView } | { ok: false; code: JobsErrorCode; message: string; state?: ExecutionView };
  const outcome = await ctx.changing(thing, async (): Promise<Outcome> => {
    let record = await ctx.executions.find(thing, jobId, body.executionNumber);
    for (let attempt = 0; attempt <= MAX_CONFLICT_RETRIES && record !== undefined; attempt++) {
      if (body.expectedVersion !== undefined && body.expectedVersion !== record.versionNumber) {
        const message = `expected version ${body.expectedVersion}, the execution is at ${record.versionNumber}`;
        return { ok: false, code: 'VersionMismatch', message, state: record };
      }
      const stepTimeout = body.status === 'IN_PROGRESS' ? body.stepTimeoutInMinutes : undefined;
      const result = await ctx.executions.transition(record, body.status, body.statusDetails, stepTimeout);
      if (result.ok) return { ok: true, record: result.record };
      if (result.code !== 'VersionMismatch') {
        return { ...result, ...(result.code === 'InvalidStateTransition' ? { state: record } : {}) };
      }
      record = result.current;
    }
    if (record === undefined)
      return { ok: false, code: 'ResourceNotFound', message: `no execution of job ${jobId} on ${thing}` };
    return { ok: false, code: 'InternalError', message: 'the execution kept changing; send the update again' };
  });
  if (!outcome.ok) return ctx.reject(rejected, outcome.code, outcome.message, body.clientToken, outcome.state);
  await ctx.reply(jobsTopics.updateAccepted(thing, jobId), {
    ...(body.includeJobExecutionState === true ? { executionState: toExecutionState(outcome.record) } : {}),
    ...(body.includeJobDocument === true ? { jobDocument: { ...outcome.record.document } } : {}),
    timestamp: epochNow(ctx.now()),
    ...token(body.clientToken),
  });
};

export const JOBS_HANDLERS: Readonly<Record<JobsOperationName, Handler>> = Object.freeze({
  'start-next': startNext,
  'get-pending': getPending,
  describe,
  update,
});
