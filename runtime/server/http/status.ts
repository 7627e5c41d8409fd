import { isOutpostError, messageOf, type ErrorCode } from '../../errors.js';

/** HTTP status per error code: what the Open Inference Protocol client should make of a failure. */
const STATUS: Partial<Record<ErrorCode, number>> = Object.freeze({
  INPUT_NAME_UNKNOWN: 400,
  INPUT_MISSING: 400,
  INPUT_DTYPE_MISMATCH: 400,
  INPUT_SHAPE_MISMATCH: 400,
  INPUT_INVALID: 400,
  INVALID_ARGUMENT: 400,
  SYMBOLIC_DIM_UNBOUND: 400,
  MODEL_RELEASED: 503,
  OVERLOADED: 503,
  REQUEST_CANCELLED: 499, // nobody is left to read it: see CLIENT_CLOSED_STATUS
  MODEL_NOT_FOUND: 404,
  MESSAGE_TOO_LARGE: 413,
  DEADLINE_EXCEEDED: 504,
  INFERENCE_FAILED: 500,
  PIPELINE_LIMIT_EXCEEDED: 400, // the request's image holds more boxes than a pipeline carries (docs/pipelines.md)
});

/**
 * The caller's mistakes (malformed input: the codes answered with 400): a version is not to blame for them, so
 * metrics count them apart and guardrails ignore them.
 */
export const CALLER_FAULTS: ReadonlySet<ErrorCode> = new Set(
  (Object.entries(STATUS) as [ErrorCode, number][]).filter(([, status]) => status === 400).map(([code]) => code),
);

/**
 * Codes of failures that belong to HTTP itself rather than to inference (they have no `OutpostError` code):
 * the status says most of it, the code is for scripts.
 */
export type HttpErrorCode =
  | ErrorCode
  | 'NOT_FOUND'
  | 'METHOD_NOT_ALLOWED'
  | 'BODY_TOO_LARGE'
  | 'RESPONSE_TOO_LARGE'
  | 'UNAUTHORIZED'
  | 'FORBIDDEN'
  | 'REQUEST_TIMEOUT'
  | 'UNSUPPORTED_MEDIA_TYPE'
  | 'BAD_REQUEST'
  | 'HEADERS_TOO_LARGE'
  | 'CLIENT_CLOSED';

export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly code: HttpErrorCode,
    /** Extra response headers (WWW-Authenticate on 401). */
    readonly headers: Readonly<Record<string, string>> = {},
  ) {
    super(message);
  }
}

/** The client went away before its request was read: there is no one to answer (nginx logs these as 499). */
export const CLIENT_CLOSED_STATUS = 499;

export function clientClosed(): HttpError {
  return new HttpError(CLIENT_CLOSED_STATUS, 'the client closed the connection mid-request', 'CLIENT_CLOSED');
}

/**
 * Statuses after which the connection is closed instead of kept alive: the rest of the request body is not worth
 * reading (too large, unauthenticated, too slow), and draining it would let a client hold the server busy.
 */
export const CLOSE_AFTER: ReadonlySet<number> = new Set([401, 408, 413, 431]);

export interface ErrorResponse {
  status: number;
  body: { error: string; code: string };
  headers: Record<string, string>;
}

/**
 * An error as the protocol's error body (`{"error": "..."}`), with our code alongside for scripts. Overload is 503
 * with Retry-After (RFC 9110 §10.2.3), so well-behaved clients back off instead of hammering.
 */
export function errorResponse(error: unknown): ErrorResponse {
  if (error instanceof HttpError)
    return { status: error.status, body: { error: error.message, code: error.code }, headers: { ...error.headers } };
  if (isOutpostError(error)) {
    const retry = error.details.retryAfterSeconds;
    return {
      status: STATUS[error.code] ?? 500,
      body: { error: error.message, code: error.code },
      headers: typeof retry === 'number' ? { 'retry-after': String(retry) } : {},
    };
  }
  return { status: 500, body: { error: messageOf(error), code: 'INTERNAL' }, headers: {} };
}
