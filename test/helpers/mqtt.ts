import { connectAsync, type MqttClient } from 'mqtt';
import { vi } from 'vitest';
import type { IncomingMessage, Transport } from '../../device-agent/transport/types.js';

export const POLL_MS = 10; // milliseconds between checks while waiting for a condition

/** Waits until `check()` holds (`vi.waitFor`), or fails naming what did not happen. */
export async function until(check: () => boolean, timeoutMs: number, what: string): Promise<void> {
  await vi.waitFor(
    () => {
      if (!check()) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    },
    { timeout: timeoutMs, interval: POLL_MS },
  );
}

/** Everything a transport (or a plain MQTT.js client) receives, in order. */
export class Inbox {
  readonly messages: IncomingMessage[] = [];

  push = (message: IncomingMessage): void => {
    this.messages.push({ topic: message.topic, payload: Buffer.from(message.payload) });
  };

  on(topic: string): Buffer[] {
    return this.messages.filter((m) => m.topic === topic).map((m) => m.payload);
  }

  async wait(topic: string, count: number, timeoutMs: number): Promise<Buffer[]> {
    await until(() => this.on(topic).length >= count, timeoutMs, `${count} message(s) on ${topic}`);
    return this.on(topic);
  }

  static of(transport: Transport): Inbox {
    const inbox = new Inbox();
    transport.onMessage(inbox.push);
    return inbox;
  }
}

/** The other side of a test: a plain MQTT.js client, no Outpost code, so the transports are checked against MQTT. */
export interface Peer {
  readonly client: MqttClient;
  readonly inbox: Inbox;
  publish(topic: string, payload: string | Buffer): Promise<void>;
  subscribe(filter: string): Promise<void>;
  close(): Promise<void>;
}

export async function connectPeer(
  url: string,
  options: { mqtt5: boolean; clientId?: string; ca?: string; cert?: string; key?: string },
): Promise<Peer> {
  const client = await connectAsync(url, {
    protocolVersion: options.mqtt5 ? 5 : 4,
    clientId: options.clientId ?? `peer-${Math.random().toString(16).slice(2, 10)}`,
    reconnectPeriod: 0,
    ca: options.ca,
    cert: options.cert,
    key: options.key,
  });
  const inbox = new Inbox();
  client.on('message', (topic, payload) => {
    inbox.push({ topic, payload });
  });
  client.on('error', () => undefined); // a broker restart ends the peer; the test makes a new one
  return {
    client,
    inbox,
    publish: async (topic, payload) => {
      await client.publishAsync(topic, payload, { qos: 1 });
    },
    subscribe: async (filter) => {
      await client.subscribeAsync(filter, { qos: 1 });
    },
    close: () => client.endAsync(true),
  };
}
