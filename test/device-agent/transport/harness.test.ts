import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FLEET_IDENTITY, startBroker, type TestBroker } from '../../helpers/broker.js';
import { connectPeer } from '../../helpers/mqtt.js';
import { waitForPort } from '../../helpers/net.js';

export const REFUSED_WITHIN_MS = 1_000; // milliseconds for a dead port to refuse

/** The broker harness itself: every listener it promises, and the failures it can stage. */
describe('test broker harness', () => {
  let broker: TestBroker;
  beforeAll(async () => {
    broker = await startBroker();
  });
  afterAll(async () => {
    await broker.stop();
  });

  it('serves plain TCP, WebSockets, TLS and mTLS (certificate required) on its own free ports', async () => {
    const fleet = await broker.identity(FLEET_IDENTITY);
    const urls = [broker.urls.tcp, broker.urls.ws];
    const peers = await Promise.all(urls.map((url) => connectPeer(url, { mqtt5: broker.mqtt5 })));
    if (broker.urls.tls !== undefined)
      peers.push(await connectPeer(broker.urls.tls, { mqtt5: true, ca: broker.ca.ca }));
    peers.push(
      await connectPeer(broker.urls.mtls, {
        mqtt5: broker.mqtt5,
        clientId: FLEET_IDENTITY,
        ca: broker.ca.ca,
        cert: fleet.cert,
        key: fleet.key,
      }),
    );
    await Promise.all(peers.map((peer) => peer.close()));
    await expect(connectPeer(broker.urls.mtls, { mqtt5: broker.mqtt5, ca: broker.ca.ca })).rejects.toThrow();
  });

  it('kill() takes every listener down until restart() brings it back on the same ports', async () => {
    const ports = { ...broker.ports };
    await broker.kill();
    await expect(waitForPort(ports.tcp, '127.0.0.1', REFUSED_WITHIN_MS)).rejects.toThrow(/nothing accepted/);
    await broker.restart();
    expect(broker.ports).toEqual(ports);
    const peer = await connectPeer(broker.urls.tcp, { mqtt5: broker.mqtt5 });
    await peer.close();
  });
});
