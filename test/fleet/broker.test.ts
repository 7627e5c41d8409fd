import { describe, expect, it } from 'vitest';
import { startEmbeddedBroker } from '../../fleet/broker.js';
import { connectPeer } from '../helpers/mqtt.js';

export const MESSAGE_TIMEOUT_MS = 3_000; // milliseconds for a message through the broker

describe('startEmbeddedBroker', () => {
  it('listens on a free port, relays messages and closes with its clients connected', async () => {
    const broker = await startEmbeddedBroker({ port: 0 });
    expect(broker.url).toBe(`mqtt://127.0.0.1:${broker.ports.mqtt}`);
    const peer = await connectPeer(broker.url, { mqtt5: false });
    await peer.subscribe('outpost/things/x/#');
    await peer.publish('outpost/things/x/y', 'hi');
    expect((await peer.inbox.wait('outpost/things/x/y', 1, MESSAGE_TIMEOUT_MS)).map(String)).toEqual(['hi']);
    expect(broker.clients()).toBe(1);
    await broker.close();
    await peer.close();
  });

  it('names the port when it is taken', async () => {
    const first = await startEmbeddedBroker({ port: 0 });
    try {
      const error: unknown = await startEmbeddedBroker({ port: first.ports.mqtt }).catch((e: unknown) => e);
      expect(error).toMatchObject({ code: 'BROKER_START_FAILED' });
      expect((error as Error).message).toBe(
        `cannot listen for MQTT on 127.0.0.1:${first.ports.mqtt}: the port is in use`,
      );
    } finally {
      await first.close();
    }
  });
});
