import * as z from 'zod';

/**
 * Job execution statuses and the moves between them, as AWS IoT Jobs defines them (developer guide,
 * iot-jobs-lifecycle, "Job execution states"; API reference, JobExecutionState "Valid Values").
 */
export const JOB_STATUSES = Object.freeze([
  'QUEUED',
  'IN_PROGRESS',
  'SUCCEEDED',
  'FAILED',
  'REJECTED',
  'CANCELED',
  'TIMED_OUT',
  'REMOVED',
] as const);
export type JobStatus = (typeof JOB_STATUSES)[number];
export const jobStatusSchema = z.enum(JOB_STATUSES);

/** iot-jobs-lifecycle: SUCCEEDED, FAILED, TIMED_OUT, REJECTED are "a terminal status"; so are CANCELED and REMOVED. */
export const TERMINAL_STATUSES: ReadonlySet<JobStatus> = new Set<JobStatus>([
  'SUCCEEDED',
  'FAILED',
  'REJECTED',
  'CANCELED',
  'TIMED_OUT',
  'REMOVED',
]);

/** GetPendingJobExecutions / StartNextPendingJobExecution: "pending" means QUEUED or IN_PROGRESS. */
export const PENDING_STATUSES: ReadonlySet<JobStatus> = new Set<JobStatus>(['QUEUED', 'IN_PROGRESS']);

/** jobs-mqtt-api, UpdateJobExecution `status`: "The new status for the job execution (IN_PROGRESS, FAILED, SUCCEEDED, or REJECTED)". */
export const DEVICE_STATUSES = Object.freeze(['IN_PROGRESS', 'SUCCEEDED', 'FAILED', 'REJECTED'] as const);
export type DeviceJobStatus = (typeof DEVICE_STATUSES)[number];
export const deviceJobStatusSchema = z.enum(DEVICE_STATUSES);

export type TransitionActor = 'device' | 'service';

/**
 * Legal transitions and who makes them (iot-jobs-lifecycle). The device moves a QUEUED or IN_PROGRESS execution
 * with UpdateJobExecution (IN_PROGRESS may repeat, to report progress in statusDetails); the service times it out
 * (only IN_PROGRESS runs a timer), cancels it or removes it. Nothing leaves a terminal status: a retry is a new
 * execution with a new executionNumber.
 */
export const JOB_TRANSITIONS: Readonly<Record<JobStatus, Readonly<Partial<Record<JobStatus, TransitionActor>>>>> =
  Object.freeze({
    QUEUED: Object.freeze({
      IN_PROGRESS: 'device',
      SUCCEEDED: 'device',
      FAILED: 'device',
      REJECTED: 'device',
      CANCELED: 'service',
      REMOVED: 'service',
    } as const),
    IN_PROGRESS: Object.freeze({
      IN_PROGRESS: 'device',
      SUCCEEDED: 'device',
      FAILED: 'device',
      REJECTED: 'device',
      TIMED_OUT: 'service',
      CANCELED: 'service',
      REMOVED: 'service',
    } as const),
    SUCCEEDED: Object.freeze({}),
    FAILED: Object.freeze({}),
    REJECTED: Object.freeze({}),
    CANCELED: Object.freeze({}),
    TIMED_OUT: Object.freeze({}),
    REMOVED: Object.freeze({}),
  });

export function isTerminal(status: JobStatus): boolean {
  return TERMINAL_STATUSES.has(status);
}

export function isPending(status: JobStatus): boolean {
  return PENDING_STATUSES.has(status);
}

/** Whether `actor` may move an execution from `from` to `to`. */
export function canTransition(from: JobStatus, to: JobStatus, actor: TransitionActor): boolean {
  return JOB_TRANSITIONS[from][to] === actor;
}

/** The statuses `actor` may move to from `from`, for messages that list what would have been accepted. */
export function allowedTransitions(from: JobStatus, actor: TransitionActor): JobStatus[] {
  return JOB_STATUSES.filter((to) => canTransition(from, to, actor));
}

/**
 * statusDetails (API reference, JobExecutionState): a string→string map, "Key Length Constraints: Minimum length of
 * 1. Maximum length of 128. Key Pattern: [a-zA-Z0-9:_-]+", values "Minimum length of 1", "The maximum length of the
 * value in the name/value pair is 1,024 characters", "Value Pattern: [^\p{C}]+" (no control characters).
 * CancelJobExecution: "You can specify at most 10 name/value pairs"; the service here holds every update to it.
 */
export const STATUS_DETAILS_MAX_PAIRS = 10;
export const STATUS_DETAILS_KEY_PATTERN = /^[a-zA-Z0-9:_-]{1,128}$/;
export const STATUS_DETAILS_MAX_VALUE_CHARS = 1024; // characters (UTF-16 code units, as the API counts them)
const VALUE_PATTERN = /^[^\p{C}]+$/u;

export const statusDetailsSchema = z
  .record(
    z.string().regex(STATUS_DETAILS_KEY_PATTERN, 'a key of 1–128 of [a-zA-Z0-9:_-]'),
    z
      .string()
      .min(1, 'a non-empty value')
      .max(STATUS_DETAILS_MAX_VALUE_CHARS, `a value of at most ${STATUS_DETAILS_MAX_VALUE_CHARS} characters`)
      .regex(VALUE_PATTERN, 'a value without control characters (newlines included)'),
  )
  .refine((details) => Object.keys(details).length <= STATUS_DETAILS_MAX_PAIRS, {
    message: `at most ${STATUS_DETAILS_MAX_PAIRS} name/value pairs`,
  });
export type StatusDetails = Record<string, string>;

/**
 * A value made fit for statusDetails: control characters (newlines, tabs) become spaces, runs of spaces collapse,
 * and the text is cut to the 1,024-character limit with an ellipsis. Empty input becomes "-" (values may not be
 * empty). Use it for error messages a device reports, which come from libraries and can hold anything.
 */
export function statusDetailValue(text: string): string {
  const clean = text
    .replace(/\p{C}+/gu, ' ')
    .replace(/\s{2,}/g, ' ')
    .trim();
  if (clean === '') return '-';
  if (clean.length <= STATUS_DETAILS_MAX_VALUE_CHARS) return clean;
  // Cut on code points: half a surrogate pair would be a control character (\p{Cs}) and fail the value pattern.
  let cut = '';
  for (const char of clean) {
    if (cut.length + char.length > STATUS_DETAILS_MAX_VALUE_CHARS - 1) break;
    cut += char;
  }
  return `${cut}…`;
}

/** `base` with `update`'s pairs laid over it (UpdateJobExecution: "If not specified, the statusDetails are unchanged"). */
export function mergeStatusDetails(base: StatusDetails | undefined, update: StatusDetails | undefined): StatusDetails {
  return { ...(base ?? {}), ...(update ?? {}) };
}
