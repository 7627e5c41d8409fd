import type { IncomingMessage } from 'node:http';
import * as z from 'zod';
import { IOT_CORE_MAX_MESSAGE_BYTES, thingNameSchema } from '../../device-agent/protocol/index.js';
import { type ErrorCode, ERROR_CODES, OutpostError } from '../../runtime/errors.js';
import { MAX_INFER_TIMEOUT_MS } from '../infer.js';
import { readJson } from './http.js';
import type { ApiContext } from './routes.js';

const modelNameSchema = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/, 'a model name');
const timeoutSchema = z.coerce.number().int().positive().max(MAX_INFER_TIMEOUT_MS);

/**
 * `POST /v1/things/{thing}/infer/{model}[?timeout_ms=N]`: the body (an Open Inference Protocol JSON request) goes to
 * the device over MQTT and the device's answer comes back as the response: 200 with the inference response, or the
 * device's error with its code (OVERLOADED 503, DEADLINE_EXCEEDED 504 …); TIMEOUT when the device did not answer.
 */
export async function inferRoute(
  ctx: ApiContext,
  req: IncomingMessage,
  { name = '', model = '' }: Record<string, string>,
  query: URLSearchParams,
): Promise<[number, unknown]> {
  const thing = check(thingNameSchema, name, 'thing');
  const modelName = check(modelNameSchema, model, 'model');
  const timeoutValue = query.get('timeout_ms');
  const timeoutMs = timeoutValue === null ? undefined : check(timeoutSchema, timeoutValue, 'timeout_ms');
  const body = await readJson(req);
  if (typeof body !== 'object' || body === null || Array.isArray(body))
    throw new OutpostError('INVALID_ARGUMENT', 'the body must be an inference request (a JSON object)');
  if (Buffer.byteLength(JSON.stringify(body)) > IOT_CORE_MAX_MESSAGE_BYTES)
    throw new OutpostError(
      'MESSAGE_TOO_LARGE',
      `the request is over ${IOT_CORE_MAX_MESSAGE_BYTES} bytes (IoT Core's message limit)`,
    );
  if (ctx.inference === undefined) throw new OutpostError('INVALID_ARGUMENT', 'this fleet service has no broker');
  const answer = await ctx.inference.infer(thing, modelName, body as Record<string, unknown>, timeoutMs);
  const { error, code } = answer.body;
  if (typeof error === 'string') {
    const known = typeof code === 'string' && Object.hasOwn(ERROR_CODES, code);
    throw new OutpostError(known ? (code as ErrorCode) : 'INFERENCE_FAILED', `${thing}: ${error}`, {
      details: { thing, model: modelName, deviceStatus: answer.status },
    });
  }
  return [200, { thing, model: modelName, roundTripMs: answer.roundTripMs, response: answer.body }];
}

function check<T>(schema: z.ZodType<T>, value: unknown, field: string): T {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  throw new OutpostError('INVALID_ARGUMENT', `${field}: ${result.error.issues[0]?.message ?? 'invalid'}`, {
    details: { field },
  });
}
