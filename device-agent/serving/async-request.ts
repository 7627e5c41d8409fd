import { OutpostError } from '../../runtime/errors.js';
import { HEADER_LENGTH_HEADER, parseHeaderLength } from '../../runtime/server/index.js';
import type { IncomingMessage } from '../transport/types.js';

/**
 * Where and how an asynchronous inference request wants its answer (docs/serving-operations.md, "Asynchronous
 * inference over MQTT"). MQTT 5 clients use the PUBLISH properties of Request / Response [MQTT 5.0 §4.10]: Response
 * Topic and Correlation Data, and the binary form's header length as the user property
 * `inference-header-content-length` (the HTTP header's name). MQTT 3.1.1 has no properties, so its clients put the
 * same two in the JSON request as `response_topic` and `correlation_data` (a string, echoed back in the answer's
 * JSON). Either may add `timeout_ms`: how long the request may wait before it is dropped with DEADLINE_EXCEEDED.
 */
export interface ReplyAddress {
  /** `properties`: the request came with MQTT 5 properties, the answer goes back with them. */
  readonly style: 'properties' | 'fields';
  readonly topic: string;
  /** MQTT 5: sent back as the answer's Correlation Data property. */
  readonly correlationData?: Buffer;
  /** MQTT 3.1.1 style: sent back as the answer's `correlation_data` field (answers are then JSON only). */
  readonly correlationField?: string;
}

export interface AsyncRequest {
  readonly body: Buffer;
  readonly headerLength?: number;
  /** Milliseconds from arrival after which the request is dropped and answered DEADLINE_EXCEEDED. */
  readonly timeoutMs?: number;
}

/** What could be read of a message: the address to answer (when any), and the request or why it is refused. */
export type ParsedMessage =
  | { readonly reply: ReplyAddress | undefined; readonly request: AsyncRequest }
  | { readonly reply: ReplyAddress | undefined; readonly error: OutpostError };

const MAX_TOPIC_BYTES = 65_535; // bytes: a UTF-8 string's length prefix [MQTT 5.0 §1.5.4]
const WILDCARD = /[+#\u0000]/;
/** Whole days of waiting have no use on a device; anything larger is a mistake (or hours typed as ms). */
export const MAX_TIMEOUT_MS = 24 * 60 * 60 * 1000; // ms

function invalid(message: string): OutpostError {
  return new OutpostError('INPUT_INVALID', message);
}

/** A topic a PUBLISH may name: no wildcards [MQTT 5.0 §4.7.0-1], not empty, within a string's length. */
function isPublishTopic(topic: unknown): topic is string {
  return (
    typeof topic === 'string' &&
    topic.length > 0 &&
    !WILDCARD.test(topic) &&
    Buffer.byteLength(topic, 'utf8') <= MAX_TOPIC_BYTES
  );
}

function jsonHeader(body: Buffer, headerLength: number | undefined): Record<string, unknown> | undefined {
  if (headerLength !== undefined && headerLength > body.length) return undefined;
  try {
    const value: unknown = JSON.parse(body.subarray(0, headerLength ?? body.length).toString('utf8'));
    return typeof value === 'object' && value !== null && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}

function addressOf(
  properties: IncomingMessage['properties'],
  header: Record<string, unknown> | undefined,
): ReplyAddress | undefined {
  if (properties?.responseTopic !== undefined) {
    const { responseTopic: topic, correlationData } = properties;
    return { style: 'properties', topic, ...(correlationData === undefined ? {} : { correlationData }) };
  }
  const topic = header?.response_topic;
  if (!isPublishTopic(topic)) return undefined;
  const correlation = header?.correlation_data;
  return { style: 'fields', topic, ...(typeof correlation === 'string' ? { correlationField: correlation } : {}) };
}

/** Reads the reply address and the request out of one message; the payload's size was checked by the caller. */
export function parseAsyncMessage(message: IncomingMessage): ParsedMessage {
  const { payload, properties } = message;
  const lengthValue = properties?.userProperties?.[HEADER_LENGTH_HEADER];
  const headerLength = lengthValue === undefined ? undefined : parseHeaderLength(lengthValue);
  const header = jsonHeader(payload, headerLength);
  const reply = addressOf(properties, header);
  if (lengthValue !== undefined && headerLength === undefined)
    return { reply, error: invalid(`${HEADER_LENGTH_HEADER} must be a non-negative integer, got "${lengthValue}"`) };
  if (header === undefined) return { reply, error: invalid('the request (or its JSON header) is not a JSON object') };
  if (header.response_topic !== undefined && !isPublishTopic(header.response_topic))
    return { reply, error: invalid('response_topic must be a topic name without wildcards') };
  if (header.correlation_data !== undefined && typeof header.correlation_data !== 'string')
    return { reply, error: invalid('correlation_data must be a string') };
  const timeout = header.timeout_ms;
  if (timeout !== undefined && (typeof timeout !== 'number' || !(timeout > 0) || timeout > MAX_TIMEOUT_MS))
    return { reply, error: invalid(`timeout_ms must be a number of ms in (0, ${MAX_TIMEOUT_MS}]`) };
  const request = {
    body: payload,
    ...(headerLength === undefined ? {} : { headerLength }),
    ...(timeout === undefined ? {} : { timeoutMs: timeout }),
  };
  return { reply, request };
}
