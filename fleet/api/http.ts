import type { IncomingMessage, ServerResponse } from 'node:http';
import { createWriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { Transform } from 'node:stream';
import { type ErrorCode, OutpostError, isOutpostError, messageOf } from '../../runtime/errors.js';
import { HttpError } from '../../runtime/server/http/index.js';

/** HTTP plumbing of the fleet API: JSON bodies with a bound, uploads streamed to disk with a bound, typed errors. */
export const MAX_JSON_BYTES = 1024 * 1024; // bytes of a JSON request body
export const MAX_UPLOAD_BYTES = 4 * 1024 ** 3; // bytes of an uploaded artifact

/** HTTP status per error code; anything else is a 500. */
const STATUS: Partial<Record<ErrorCode, number>> = Object.freeze({
  INVALID_ARGUMENT: 400,
  PROTOCOL_ID_INVALID: 400,
  JOB_DOCUMENT_INVALID: 400,
  JOB_DOCUMENT_TOO_LARGE: 400,
  TARGET_EMPTY: 400,
  STRATEGY_INVALID: 400,
  UNAUTHORIZED: 401,
  THING_NOT_FOUND: 404,
  GROUP_NOT_FOUND: 404,
  DEPLOYMENT_NOT_FOUND: 404,
  ARTIFACT_NOT_FOUND: 404,
  ALREADY_EXISTS: 409,
  STORE_CONFLICT: 409,
  STORE_LOCKED: 503,
  STORE_UNREACHABLE: 503,
  STORE_FULL: 507,
  DISK_FULL: 507,
  STORE_SCHEMA_NEWER: 500,
  // A device's answer to an asynchronous inference request (api/infer-route.ts), as its own server would say it
  INPUT_INVALID: 400,
  INPUT_NAME_UNKNOWN: 400,
  INPUT_MISSING: 400,
  INPUT_DTYPE_MISMATCH: 400,
  INPUT_SHAPE_MISMATCH: 400,
  MODEL_NOT_FOUND: 404,
  MESSAGE_TOO_LARGE: 413,
  OVERLOADED: 503,
  DEADLINE_EXCEEDED: 504,
  TIMEOUT: 504,
});

export function statusOf(error: unknown): number {
  if (error instanceof HttpError) return error.status;
  if (!isOutpostError(error)) return 500;
  // Every artifact verification failure is the request's fault: the artifact it sent is bad.
  if (error.code.startsWith('ARTIFACT_') || error.code === 'KEY_INVALID') return STATUS[error.code] ?? 422;
  return STATUS[error.code] ?? 500;
}

export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

export function sendError(res: ServerResponse, error: unknown): void {
  const status = statusOf(error);
  const code = error instanceof HttpError ? error.code : isOutpostError(error) ? error.code : 'INTERNAL';
  const details = isOutpostError(error) ? error.details : {};
  const headers = error instanceof HttpError ? { ...error.headers } : {};
  sendJson(res, status, { error: { code, message: messageOf(error), details } }, headers);
}

export async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_JSON_BYTES)
      throw new HttpError(413, `the JSON body is over ${MAX_JSON_BYTES} bytes`, 'BODY_TOO_LARGE');
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (text.trim() === '') return {};
  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    throw new OutpostError('INVALID_ARGUMENT', `the request body is not JSON: ${messageOf(error)}`);
  }
}

/** Streams the request body into `path` (removed again if the body is cut short or too large). */
export async function readUpload(req: IncomingMessage, path: string, limit = MAX_UPLOAD_BYTES): Promise<number> {
  let size = 0;
  const counter = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      size += chunk.length;
      if (size > limit) done(new HttpError(413, `the upload is over ${limit} bytes`, 'BODY_TOO_LARGE'));
      else done(null, chunk);
    },
  });
  try {
    await pipeline(req, counter, createWriteStream(path, { flags: 'wx' }));
  } catch (error) {
    await rm(path, { force: true });
    throw error;
  }
  if (size === 0) {
    await rm(path, { force: true });
    throw new OutpostError('INVALID_ARGUMENT', 'the upload is empty: send the artifact .tar.gz as the body');
  }
  return size;
}
