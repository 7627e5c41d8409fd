import * as z from 'zod';
import { ProtocolError } from './errors.js';

/**
 * Names that appear in topics, checked against AWS IoT's own patterns so a name accepted here is accepted by
 * AWS IoT Core too (and can never smuggle a `/`, `+` or `#` into a topic).
 */

/** API_CreateThing, thingName: "Length 1–128, Pattern: [a-zA-Z0-9:_-]+". */
export const THING_NAME_PATTERN = /^[a-zA-Z0-9:_-]{1,128}$/;
/** API_CreateJob, jobId: "Length 1–64, Pattern: [a-zA-Z0-9_-]+". */
export const JOB_ID_PATTERN = /^[a-zA-Z0-9_-]{1,64}$/;
/** API_CreateStream, streamId: "Length 1–128, Pattern: [a-zA-Z0-9_-]+". */
export const STREAM_ID_PATTERN = /^[a-zA-Z0-9_-]{1,128}$/;
/**
 * Jobs device MQTT API, DescribeJobExecution: the job id `$next` names the next pending execution. It is only a
 * topic segment, never the id of a job.
 */
export const NEXT_JOB_ID = '$next';
/**
 * mqtt-based-file-delivery-in-devices: "The client token can't be longer than 64 bytes" (streams); the Jobs API
 * reflects the token unchanged and the SDKs hold it to the same bound.
 */
export const MAX_CLIENT_TOKEN_BYTES = 64; // bytes, UTF-8

/** A model's name as a deployment names it (job-document.ts) and as it appears in the async inference topic. */
export const MODEL_NAME_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

export type IdKind = 'thing name' | 'job id' | 'stream id' | 'model name';

const PATTERNS: Readonly<Record<IdKind, { pattern: RegExp; accepted: string }>> = Object.freeze({
  'thing name': { pattern: THING_NAME_PATTERN, accepted: '1–128 of [a-zA-Z0-9:_-]' },
  'job id': { pattern: JOB_ID_PATTERN, accepted: '1–64 of [a-zA-Z0-9_-]' },
  'stream id': { pattern: STREAM_ID_PATTERN, accepted: '1–128 of [a-zA-Z0-9_-]' },
  'model name': { pattern: MODEL_NAME_ID_PATTERN, accepted: '1–128 of [A-Za-z0-9._-], not starting with . _ or -' },
});

export function isValidId(kind: IdKind, value: string): boolean {
  return PATTERNS[kind].pattern.test(value);
}

/** Returns the value, or throws PROTOCOL_ID_INVALID naming it and the accepted pattern. */
export function checkId(kind: IdKind, value: string): string {
  const { pattern, accepted } = PATTERNS[kind];
  if (!pattern.test(value)) {
    throw new ProtocolError(
      'PROTOCOL_ID_INVALID',
      `${JSON.stringify(value)} is not a valid ${kind}: expected ${accepted}`,
      {
        details: { kind, value, accepted },
      },
    );
  }
  return value;
}

export const thingNameSchema = z.string().regex(THING_NAME_PATTERN, 'a thing name: 1–128 of [a-zA-Z0-9:_-]');
export const jobIdSchema = z.string().regex(JOB_ID_PATTERN, 'a job id: 1–64 of [a-zA-Z0-9_-]');
export const streamIdSchema = z.string().regex(STREAM_ID_PATTERN, 'a stream id: 1–128 of [a-zA-Z0-9_-]');
export const clientTokenSchema = z
  .string()
  .refine((token) => Buffer.byteLength(token, 'utf8') <= MAX_CLIENT_TOKEN_BYTES, {
    message: `a client token of at most ${MAX_CLIENT_TOKEN_BYTES} bytes`,
  });
