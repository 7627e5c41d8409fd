import { randomBytes } from 'node:crypto';
import { connectAsync, type IPublishPacket, type MqttClient } from 'mqtt';
import { outpostTopics } from '../../device-agent/protocol/index.js';

/**
 * A caller of asynchronous inference on the far side of the broker: a plain MQTT.js client (no Outpost code), on
 * MQTT 5 (Response Topic + Correlation Data properties) or MQTT 3.1.1 (the same two as fields of the request).
 */
export interface AsyncAnswer {
  readonly payload: Buffer;
  readonly properties: IPublishPacket['properties'];
  /** The request's correlation: the Correlation Data property (MQTT 5), else the answer's `correlation_data`. */
  readonly correlation: string | undefined;
  /** The answer's JSON (its header, in the binary form). */
  readonly json: Record<string, unknown>;
}

export interface AsyncClient {
  readonly client: MqttClient;
  readonly replyTopic: string;
  readonly answers: AsyncAnswer[];
  /** Publishes `body` as a request for `model`, correlated by `correlation`; `extra` goes into the JSON (3.1.1). */
  request(
    model: string,
    body: Record<string, unknown> | Buffer,
    correlation: string,
    headerLength?: number,
  ): Promise<void>;
  close(): Promise<void>;
}

export async function connectAsyncClient(url: string, thing: string, mqtt5: boolean): Promise<AsyncClient> {
  const clientId = `caller-${randomBytes(4).toString('hex')}`;
  const client = await connectAsync(url, { protocolVersion: mqtt5 ? 5 : 4, clientId, reconnectPeriod: 0 });
  client.on('error', () => undefined);
  const replyTopic = outpostTopics.inferReplies(thing, clientId);
  await client.subscribeAsync(replyTopic, { qos: 1 });
  const answers: AsyncAnswer[] = [];
  client.on('message', (_topic, payload, packet) => {
    const length = packet.properties?.userProperties?.['inference-header-content-length'];
    const header = typeof length === 'string' ? payload.subarray(0, Number(length)) : payload;
    const json = JSON.parse(header.toString('utf8')) as Record<string, unknown>;
    const data = packet.properties?.correlationData;
    const field = json.correlation_data;
    const correlation = data !== undefined ? data.toString('utf8') : typeof field === 'string' ? field : undefined;
    answers.push({ payload: Buffer.from(payload), properties: packet.properties, correlation, json });
  });
  return {
    client,
    replyTopic,
    answers,
    async request(model, body, correlation, headerLength) {
      const topic = outpostTopics.infer(thing, model);
      if (mqtt5) {
        const payload = Buffer.isBuffer(body) ? body : Buffer.from(JSON.stringify(body));
        await client.publishAsync(topic, payload, {
          qos: 1,
          properties: {
            responseTopic: replyTopic,
            correlationData: Buffer.from(correlation),
            ...(headerLength === undefined
              ? {}
              : { userProperties: { 'inference-header-content-length': String(headerLength) } }),
          },
        });
        return;
      }
      if (Buffer.isBuffer(body)) throw new Error('MQTT 3.1.1 requests are JSON');
      const payload = JSON.stringify({ ...body, response_topic: replyTopic, correlation_data: correlation });
      await client.publishAsync(topic, payload, { qos: 1 });
    },
    close: () => client.endAsync(true),
  };
}
