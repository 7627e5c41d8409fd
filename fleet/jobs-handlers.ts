import {
  type JobStatus,
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
import {
  type ExecutionRecord,
  type ExecutionTable,
  toExecution,
  toExecutionState,
  toSummary,
} from './job-executions.js';

/**
 * One handler per Jobs device MQTT API request (jobs-mqtt-api), dispatched by jobs-service.ts from the request
 * topic. Handlers decide and reply; the service owns the table, the timers and the notifications (JobsContext).
 */
export interface JobsRequest {
  readonly thing: string;
  /** From the topic: a job id, or `$next` (DescribeJobExecution only). */
  readonly jobId?: string;
  readonly payload: Buffer;
}

export interface JobsContext {
  readonly table: ExecutionTable;
  now(): number; // milliseconds since the epoch
  /** Runs a change to a thing's executions, then publishes notify-next / notify if its pending list changed. */
  changing(thing: string, change: () => void): Promise<void>;
  /** After a transition: re-arm the execution's timer and tell listeners. */
  applied(record: ExecutionRecord, previous: JobStatus): void;
  setStepTimeout(record: ExecutionRecord, minutes: number | undefined): void;
  reply(topic: string, message: object): Promise<void>;
  reject(topic: string, code: JobsErrorCode, message: string, token?: string, state?: ExecutionRecord): Promise<void>;
}

export type JobsOperationName = 'start-next' | 'get-pending' | 'describe' | 'update';
type Handler = (ctx: JobsContext, request: JobsRequest) => Promise<void>;
type Failure = { code: JobsErrorCode; message: string };

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
  let execution: ExecutionRecord | undefined;
  let failure: Failure | undefined;
  await ctx.changing(thing, () => {
    execution = ctx.table.nextPending(thing);
    if (execution?.status !== 'QUEUED') return;
    const result = ctx.table.transition(execution, 'IN_PROGRESS', 'device', statusDetails, ctx.now());
    if (!result.ok) {
      failure = result;
      return;
    }
    ctx.setStepTimeout(execution, stepTimeoutInMinutes);
    ctx.applied(execution, result.previous);
  });
  if (failure !== undefined) return ctx.reject(rejected, failure.code, failure.message, clientToken);
  await ctx.reply(jobsTopics.startNextAccepted(thing), {
    ...(execution === undefined ? {} : { execution: toExecution(execution) }),
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
  const { inProgress, queued } = ctx.table.pending(thing);
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
  const record = jobId === NEXT_JOB_ID ? ctx.table.nextPending(thing) : ctx.table.find(thing, jobId, executionNumber);
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
 * UpdateJobExecution, checked in this order: the execution exists (ResourceNotFound); `expectedVersion` matches
 * ("the update is rejected with a VersionMismatch error, and an ErrorResponse that contains the current job execution
 * status data"); the move is legal (InvalidStateTransition, with executionState too); statusDetails stay within 10
 * pairs once merged (InvalidRequest).
 */
const update: Handler = async (ctx, { thing, jobId = '', payload }) => {
  const rejected = jobsTopics.updateRejected(thing, jobId);
  const request = decodeJobsMessage(updateRequestSchema, payload);
  if (!request.ok) return ctx.reject(rejected, request.code, request.message, request.clientToken);
  const body = request.value;
  const record = ctx.table.find(thing, jobId, body.executionNumber);
  if (record === undefined) {
    return ctx.reject(rejected, 'ResourceNotFound', `no execution of job ${jobId} on ${thing}`, body.clientToken);
  }
  if (body.expectedVersion !== undefined && body.expectedVersion !== record.versionNumber) {
    const message = `expected version ${body.expectedVersion}, the execution is at ${record.versionNumber}`;
    return ctx.reject(rejected, 'VersionMismatch', message, body.clientToken, record);
  }
  let failure: Failure | undefined;
  await ctx.changing(thing, () => {
    const result = ctx.table.transition(record, body.status, 'device', body.statusDetails, ctx.now());
    if (!result.ok) {
      failure = result;
      return;
    }
    if (body.status === 'IN_PROGRESS') ctx.setStepTimeout(record, body.stepTimeoutInMinutes);
    ctx.applied(record, result.previous);
  });
  if (failure !== undefined) {
    const state = failure.code === 'InvalidStateTransition' ? record : undefined;
    return ctx.reject(rejected, failure.code, failure.message, body.clientToken, state);
  }
  await ctx.reply(jobsTopics.updateAccepted(thing, jobId), {
    ...(body.includeJobExecutionState === true ? { executionState: toExecutionState(record) } : {}),
    ...(body.includeJobDocument === true ? { jobDocument: { ...record.document } } : {}),
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
