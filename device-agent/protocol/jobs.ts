import * as z from 'zod';
import { fieldPath } from './errors.js';
import { clientTokenSchema, jobIdSchema, thingNameSchema } from './ids.js';
import { deviceJobStatusSchema, jobStatusSchema, statusDetailsSchema } from './job-status.js';

/**
 * The messages of the Jobs device MQTT API (developer guide: jobs-mqtt-api, "Jobs device MQTT and HTTPS data types",
 * jobs-api "ErrorResponse"). Field names and shapes are AWS's, so a device speaks to AWS IoT Jobs and to
 * `fleet/jobs-service.ts` alike. Times are "in seconds since the epoch" (JobExecution, queuedAt/startedAt/…).
 */

const epochSeconds = z.number().int().nonnegative();
const count = z.number().int().nonnegative();

/** Seconds since the epoch, as every Jobs message carries its times. */
export function epochNow(nowMs: number = Date.now()): number {
  return Math.floor(nowMs / 1000);
}

/**
 * The job document travels as JSON inside the execution. AWS's MQTT replies embed it as an object; its HTTPS API
 * (and some SDKs) give it as a JSON string: both are accepted here, and `parseJobDocument` reads either.
 */
const jobDocumentField = z.union([z.record(z.string(), z.unknown()), z.string()]);

/** API reference, iot-jobs-data JobExecution. */
export const jobExecutionSchema = z.object({
  jobId: jobIdSchema,
  thingName: thingNameSchema,
  jobDocument: jobDocumentField.optional(),
  status: jobStatusSchema,
  statusDetails: statusDetailsSchema.optional(),
  queuedAt: epochSeconds,
  startedAt: epochSeconds.optional(),
  lastUpdatedAt: epochSeconds,
  versionNumber: count,
  executionNumber: count,
  approximateSecondsBeforeTimedOut: count.optional(),
});
export type JobExecution = z.infer<typeof jobExecutionSchema>;

/** API reference, iot-jobs-data JobExecutionState. */
export const jobExecutionStateSchema = z.object({
  status: jobStatusSchema,
  statusDetails: statusDetailsSchema.optional(),
  versionNumber: count,
});
export type JobExecutionState = z.infer<typeof jobExecutionStateSchema>;

/** API reference, iot-jobs-data JobExecutionSummary. */
export const jobExecutionSummarySchema = z.object({
  jobId: jobIdSchema,
  queuedAt: epochSeconds,
  startedAt: epochSeconds.optional(),
  lastUpdatedAt: epochSeconds,
  versionNumber: count,
  executionNumber: count,
});
export type JobExecutionSummary = z.infer<typeof jobExecutionSummarySchema>;

/**
 * StartNextPendingJobExecution / UpdateJobExecution `stepTimeoutInMinutes`: 1–10,080 minutes (7 days); the
 * data-plane SDKs send -1 to cancel a running step timer.
 */
export const MAX_STEP_TIMEOUT_MINUTES = 10_080; // minutes
const stepTimeoutSchema = z.union([z.literal(-1), z.number().int().min(1).max(MAX_STEP_TIMEOUT_MINUTES)]);

// ── Requests (device → service) ──────────────────────────────────────────────────────────────────────────────

/** GetPendingJobExecutions: `$aws/things/{thing}/jobs/get`. */
export const getPendingRequestSchema = z.object({ clientToken: clientTokenSchema.optional() });
export type GetPendingRequest = z.infer<typeof getPendingRequestSchema>;

/** StartNextPendingJobExecution: `$aws/things/{thing}/jobs/start-next`. */
export const startNextRequestSchema = z.object({
  statusDetails: statusDetailsSchema.optional(),
  stepTimeoutInMinutes: stepTimeoutSchema.optional(),
  clientToken: clientTokenSchema.optional(),
});
export type StartNextRequest = z.infer<typeof startNextRequestSchema>;

/** DescribeJobExecution: `$aws/things/{thing}/jobs/{jobId|$next}/get`. */
export const describeRequestSchema = z.object({
  executionNumber: count.optional(),
  /** "Unless set to false, the response contains the job document. The default is true." */
  includeJobDocument: z.boolean().optional(),
  clientToken: clientTokenSchema.optional(),
});
export type DescribeRequest = z.infer<typeof describeRequestSchema>;

/** UpdateJobExecution: `$aws/things/{thing}/jobs/{jobId}/update`. */
export const updateRequestSchema = z.object({
  status: deviceJobStatusSchema,
  statusDetails: statusDetailsSchema.optional(),
  expectedVersion: count.optional(),
  executionNumber: count.optional(),
  includeJobExecutionState: z.boolean().optional(),
  includeJobDocument: z.boolean().optional(),
  stepTimeoutInMinutes: stepTimeoutSchema.optional(),
  clientToken: clientTokenSchema.optional(),
});
export type UpdateRequest = z.infer<typeof updateRequestSchema>;

// ── Replies and notifications (service → device) ─────────────────────────────────────────────────────────────

const reply = { timestamp: epochSeconds, clientToken: clientTokenSchema.optional() };

/** `…/jobs/get/accepted`. */
export const getPendingAcceptedSchema = z.object({
  inProgressJobs: z.array(jobExecutionSummarySchema),
  queuedJobs: z.array(jobExecutionSummarySchema),
  ...reply,
});
export type GetPendingAccepted = z.infer<typeof getPendingAcceptedSchema>;

/** `…/jobs/start-next/accepted`: "If no job executions are pending, the response does not include the execution field". */
export const startNextAcceptedSchema = z.object({ execution: jobExecutionSchema.optional(), ...reply });
export type StartNextAccepted = z.infer<typeof startNextAcceptedSchema>;

/** `…/jobs/{jobId}/get/accepted` (for `$next` with nothing pending, without `execution`). */
export const describeAcceptedSchema = z.object({ execution: jobExecutionSchema.optional(), ...reply });
export type DescribeAccepted = z.infer<typeof describeAcceptedSchema>;

/** `…/jobs/{jobId}/update/accepted`. */
export const updateAcceptedSchema = z.object({
  executionState: jobExecutionStateSchema.optional(),
  jobDocument: jobDocumentField.optional(),
  ...reply,
});
export type UpdateAccepted = z.infer<typeof updateAcceptedSchema>;

/** NextJobExecutionChanged on `…/jobs/notify-next`: without `execution` when nothing is pending any more. */
export const notifyNextSchema = z.object({ execution: jobExecutionSchema.optional(), timestamp: epochSeconds });
export type NotifyNext = z.infer<typeof notifyNextSchema>;

/** JobExecutionsChanged on `…/jobs/notify`: pending executions by status (`QUEUED`, `IN_PROGRESS`). */
export const notifySchema = z.object({
  jobs: z.partialRecord(jobStatusSchema, z.array(jobExecutionSummarySchema)),
  timestamp: epochSeconds,
});
export type Notify = z.infer<typeof notifySchema>;

/** jobs-api, ErrorResponse `code`. */
export const JOBS_ERROR_CODES = Object.freeze([
  'InvalidTopic',
  'InvalidJson',
  'InvalidRequest',
  'InvalidStateTransition',
  'ResourceNotFound',
  'VersionMismatch',
  'InternalError',
  'RequestThrottled',
  'TerminalStateReached',
] as const);
export type JobsErrorCode = (typeof JOBS_ERROR_CODES)[number];

/** `…/rejected`: `executionState` is "included only when the code field has the value InvalidStateTransition or VersionMismatch". */
export const jobsRejectedSchema = z.object({
  code: z.enum(JOBS_ERROR_CODES),
  message: z.string(),
  executionState: jobExecutionStateSchema.optional(),
  ...reply,
});
export type JobsRejected = z.infer<typeof jobsRejectedSchema>;

// ── Decoding ─────────────────────────────────────────────────────────────────────────────────────────────────

export type JobsDecoded<T> =
  { ok: true; value: T } | { ok: false; code: 'InvalidJson' | 'InvalidRequest'; message: string; clientToken?: string };

/**
 * Decodes a Jobs message: not UTF-8 JSON → InvalidJson ("could not be interpreted as valid UTF-8-encoded JSON"),
 * wrong shape → InvalidRequest naming the field. An empty payload is `{}`: every request field is optional but
 * `status`. The client token is recovered even from an invalid request, so the rejection can carry it.
 */
export function decodeJobsMessage<T>(schema: z.ZodType<T>, payload: Uint8Array | string): JobsDecoded<T> {
  let json: unknown;
  try {
    const text = typeof payload === 'string' ? payload : new TextDecoder('utf-8', { fatal: true }).decode(payload);
    json = text.trim() === '' ? {} : JSON.parse(text);
  } catch (error) {
    return { ok: false, code: 'InvalidJson', message: `not UTF-8 JSON: ${(error as Error).message}` };
  }
  const parsed = schema.safeParse(json);
  if (parsed.success) return { ok: true, value: parsed.data };
  const token = clientTokenSchema.safeParse((json as { clientToken?: unknown } | null)?.clientToken);
  const issue = parsed.error.issues[0];
  const message = issue === undefined ? 'invalid request' : `${fieldPath(issue.path)}: ${issue.message}`;
  return { ok: false, code: 'InvalidRequest', message, ...(token.success ? { clientToken: token.data } : {}) };
}

/** Encodes a Jobs message as AWS does: compact UTF-8 JSON, absent optional fields left out. */
export function encodeJobsMessage(message: object): Buffer {
  return Buffer.from(JSON.stringify(message), 'utf8');
}
