import { randomBytes } from 'node:crypto';
import type { IPublishPacket, MqttClient } from 'mqtt';
import { outpostTopics, parseTopic } from '../device-agent/protocol/index.js';
import { OutpostError } from '../runtime/errors.js';
import { logger } from '../runtime/log.js';

const log = logger('fleet.infer');

/** How long the fleet waits for a device's answer unless told otherwise. */
export const DEFAULT_INFER_TIMEOUT_MS = 30_000; // ms
export const MAX_INFER_TIMEOUT_MS = 10 * 60_000; // ms

/** A device's answer to one asynchronous inference request (docs/serving-operations.md). */
export interface InferAnswer {
  readonly thing: string;
  readonly model: string;
  /** The device's status for it: 200, or the HTTP status of its error code (OVERLOADED 503, …). */
  readonly status: number;
  /** The answer's JSON: the Open Inference Protocol response, or `{ error, code }`. */
  readonly body: Record<string, unknown>;
  /** Request published → answer received, ms. */
  readonly roundTripMs: number;
}

interface Waiter {
  readonly resolve: (answer: { payload: Buffer; status: number | undefined }) => void;
  readonly started: number;
}

/**
 * The fleet's side of asynchronous inference over MQTT: publishes an Open Inference Protocol JSON request to
 * `outpost/things/{thing}/infer/{model}` and waits for the device's answer on
 * `outpost/things/{thing}/infer-replies/{replyId}`, on the fleet's one connection. On MQTT 5 the correlation travels
 * as Correlation Data [MQTT 5.0 §4.10.2]; on MQTT 3.1.1 as the request's `correlation_data` field.
 */
export class FleetInference {
  private readonly replyId = `fleet-${randomBytes(6).toString('hex')}`;
  private readonly waiting = new Map<string, Waiter>();
  private readonly filter = `outpost/things/+/infer-replies/${this.replyId}`;
  private readonly listener = (topic: string, payload: Buffer, packet: IPublishPacket): void => {
    this.onMessage(topic, payload, packet);
  };

  constructor(
    private readonly client: MqttClient,
    private readonly protocolVersion: 4 | 5,
  ) {}

  async start(): Promise<void> {
    this.client.on('message', this.listener);
    await this.client.subscribeAsync(this.filter, { qos: 1 });
  }

  async infer(
    thing: string,
    model: string,
    request: Record<string, unknown>,
    timeoutMs = DEFAULT_INFER_TIMEOUT_MS,
  ): Promise<InferAnswer> {
    const topic = outpostTopics.infer(thing, model);
    const responseTopic = outpostTopics.inferReplies(thing, this.replyId);
    const correlation = randomBytes(12).toString('hex');
    const rest = { ...request };
    delete rest.response_topic; // the fleet's own reply address replaces any the caller sent
    delete rest.correlation_data;
    const mqtt5 = this.protocolVersion === 5;
    const payload = JSON.stringify(
      mqtt5 ? rest : { ...rest, response_topic: responseTopic, correlation_data: correlation },
    );
    const started = performance.now();
    const answered = new Promise<{ payload: Buffer; status: number | undefined }>((resolve) => {
      this.waiting.set(correlation, { resolve, started });
    });
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        reject(
          new OutpostError(
            'TIMEOUT',
            `${thing} did not answer ${model} within ${timeoutMs} ms (is it online and serving it?)`,
            {
              details: { thing, model, timeoutMs },
            },
          ),
        );
      }, timeoutMs);
    });
    try {
      await this.client.publishAsync(topic, payload, {
        qos: 1,
        ...(mqtt5 ? { properties: { responseTopic, correlationData: Buffer.from(correlation) } } : {}),
      });
      const answer = await Promise.race([answered, timedOut]);
      return { thing, model, ...decode(answer.payload, answer.status), roundTripMs: performance.now() - started };
    } finally {
      clearTimeout(timer);
      this.waiting.delete(correlation);
    }
  }

  private onMessage(topic: string, payload: Buffer, packet: IPublishPacket): void {
    if (!topic.endsWith(`/infer-replies/${this.replyId}`)) return;
    const data = packet.properties?.correlationData;
    let correlation = data === undefined ? undefined : Buffer.from(data).toString('utf8');
    if (correlation === undefined) {
      try {
        const field = (JSON.parse(payload.toString('utf8')) as { correlation_data?: unknown }).correlation_data;
        if (typeof field === 'string') correlation = field;
      } catch {
        // not JSON: nobody's answer
      }
    }
    const waiter = correlation === undefined ? undefined : this.waiting.get(correlation);
    if (waiter === undefined) {
      log.debug({ topic, thing: parseTopic(topic)?.thing }, 'answer for no waiting request');
      return;
    }
    const status = packet.properties?.userProperties?.status;
    waiter.resolve({ payload, status: typeof status === 'string' ? Number(status) : undefined });
  }

  async close(): Promise<void> {
    this.client.removeListener('message', this.listener);
    if (this.client.connected) await this.client.unsubscribeAsync(this.filter).catch(() => undefined);
  }
}

function decode(payload: Buffer, status: number | undefined): { status: number; body: Record<string, unknown> } {
  let body: Record<string, unknown>;
  try {
    body = JSON.parse(payload.toString('utf8')) as Record<string, unknown>;
  } catch {
    throw new OutpostError('INTERNAL', 'the device answered with something other than JSON');
  }
  const rest = { ...body };
  delete rest.correlation_data;
  return {
    status: status ?? (typeof rest.code === 'string' && typeof rest.error === 'string' ? 500 : 200),
    body: rest,
  };
}
