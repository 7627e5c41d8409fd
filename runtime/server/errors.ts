import { isOutpostError, messageOf, type ErrorCode } from '../errors.js';

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
  MODEL_NOT_FOUND: 404,
  INFERENCE_FAILED: 500,
});

export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly code: string,
  ) {
    super(message);
  }
}

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
    return { status: error.status, body: { error: error.message, code: error.code }, headers: {} };
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
