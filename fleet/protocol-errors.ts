import { type IdKind, checkId, isProtocolError } from '../device-agent/protocol/index.js';
import { type ErrorCode, OutpostError } from '../runtime/errors.js';

/**
 * The protocol throws ProtocolError (it may not import runtime/); the fleet speaks OutpostError. Every protocol code is
 * also an ErrorCode (runtime/errors.ts), which the assignment below checks at compile time.
 */
export function asOutpostError(error: unknown): unknown {
  if (!isProtocolError(error)) return error;
  const code: ErrorCode = error.code;
  return new OutpostError(code, error.message, { cause: error, details: error.details });
}

/** Runs `fn`, re-throwing a ProtocolError as the OutpostError with the same code. */
export async function withOutpostErrors<T>(fn: () => Promise<T> | T): Promise<T> {
  try {
    return await fn();
  } catch (error) {
    throw asOutpostError(error);
  }
}

/** checkId, throwing OutpostError PROTOCOL_ID_INVALID. */
export function checkName(kind: IdKind, value: string): string {
  try {
    return checkId(kind, value);
  } catch (error) {
    throw asOutpostError(error);
  }
}
