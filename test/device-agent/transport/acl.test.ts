import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createTransport, type TransportKind } from '../../../device-agent/transport/index.js';
import type { Transport } from '../../../device-agent/transport/types.js';
import {
  ACL_FILE,
  FLEET_IDENTITY,
  mosquittoPath,
  startBroker,
  type BrokerKind,
  type TestBroker,
} from '../../helpers/broker.js';
import { ROOT } from '../../helpers/models.js';
import { Inbox, connectPeer, until, type Peer } from '../../helpers/mqtt.js';
import { CONNECT_TIMEOUT_MS, MESSAGE_TIMEOUT_MS, RECONNECT_TIMEOUT_MS, TEST_RECONNECT } from './suite.js';

export const TAKEOVER_WATCH_MS = 300; // milliseconds a victim must stay connected after an impostor connects

interface AclCase {
  readonly name: string;
  readonly broker: BrokerKind;
  readonly kind: TransportKind;
  /** How devices reach the broker: MQTT over TLS (default) or secure WebSockets, both with client certificates. */
  readonly listener?: 'mtls' | 'wss';
}

const CASES: readonly AclCase[] = Object.freeze([
  { name: 'Mosquitto with docs/examples/mosquitto-acl.conf, mqtt.js', broker: 'mosquitto', kind: 'mqtt' },
  {
    name: 'Mosquitto with docs/examples/mosquitto-acl.conf, aws-iot-device-sdk-v2',
    broker: 'mosquitto',
    kind: 'aws-iot',
  },
  { name: 'the embedded broker (same policy, built in), mqtt.js', broker: 'aedes', kind: 'mqtt' },
  { name: 'the embedded broker over secure WebSockets, mqtt.js', broker: 'aedes', kind: 'mqtt', listener: 'wss' },
]);

describe('docs/mosquitto-acl.md', () => {
  it('shows the ACL the harness enforces, verbatim', async () => {
    const [doc, acl] = await Promise.all([
      readFile(join(ROOT, 'docs', 'mosquitto-acl.md'), 'utf8'),
      readFile(ACL_FILE, 'utf8'),
    ]);
    expect(doc).toContain(acl.trim());
  });
});

/** A device's certificate confines it to its own `$aws/things/{thing}/…` and `outpost/things/{thing}/…` topics. */
describe.each(CASES)('device confinement: $name', ({ broker: brokerKind, kind, listener = 'mtls' }) => {
  const installed = brokerKind === 'aedes' || mosquittoPath() !== undefined;
  let broker: TestBroker;
  let fleet: Peer;
  const cleanups: (() => Promise<void>)[] = [];

  beforeAll(async () => {
    if (!installed) return;
    broker = await startBroker({ kind: brokerKind });
    const identity = await broker.identity(FLEET_IDENTITY);
    fleet = await connectPeer(broker.urls.mtls, {
      mqtt5: broker.mqtt5,
      clientId: FLEET_IDENTITY,
      ca: broker.ca.ca,
      cert: identity.cert,
      key: identity.key,
    });
    await fleet.subscribe('outpost/things/+/#');
    await fleet.subscribe('$aws/things/+/#');
  });
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });
  afterAll(async () => {
    if (!installed) return;
    await fleet.close();
    await broker.stop();
  });

  /** A device transport over mTLS whose certificate's CN is `thing` (claiming `clientId`, normally the same). */
  async function device(thing: string, clientId = thing): Promise<{ transport: Transport; inbox: Inbox }> {
    const pair = await broker.identity(thing);
    const transport = createTransport(kind, {
      url: listener === 'wss' ? `wss://localhost:${String(broker.ports.wss)}` : broker.urls.mtls,
      clientId,
      tls: { ca: broker.ca.ca, cert: pair.cert, key: pair.key },
      reconnect: TEST_RECONNECT,
      connectTimeoutMs: CONNECT_TIMEOUT_MS,
    });
    cleanups.push(() => transport.close());
    return { transport, inbox: Inbox.of(transport) };
  }

  const things = () => {
    const id = randomBytes(3).toString('hex');
    return [`thing-a-${id}`, `thing-b-${id}`] as const;
  };

  it("cannot publish on another device's topics", async (context) => {
    context.skip(!installed, 'Mosquitto is not installed');
    const [a, b] = things();
    const { transport } = await device(a);
    await transport.connect();
    for (const topic of [`outpost/things/${b}/status`, `$aws/things/${b}/jobs/start-next`]) {
      // Mosquitto answers MQTT 5 with PUBACK 0x87 (and drops 3.1.1 silently); aedes closes the connection.
      const error: unknown = await transport.publish(topic, 'forged').catch((e: unknown) => e);
      if (error !== undefined)
        expect((error as { code?: string }).code).toMatch(/^TRANSPORT_(PUBLISH_REJECTED|OFFLINE)$/);
      await until(() => transport.connected, RECONNECT_TIMEOUT_MS, 'the device to be connected');
    }
    // Same publisher, later message: once it arrives, the forged ones would have too [MQTT 5.0 §4.6].
    await transport.publish(`outpost/things/${a}/status`, 'sentinel');
    await fleet.inbox.wait(`outpost/things/${a}/status`, 1, MESSAGE_TIMEOUT_MS);
    expect(fleet.inbox.on(`outpost/things/${b}/status`)).toEqual([]);
    expect(fleet.inbox.on(`$aws/things/${b}/jobs/start-next`)).toEqual([]);
  });

  it("cannot read another device's topics, subscribed or not", async (context) => {
    context.skip(!installed, 'Mosquitto is not installed');
    const [a, b] = things();
    const { transport, inbox } = await device(a);
    await transport.connect();
    for (const filter of [`outpost/things/${b}/#`, `$aws/things/${b}/jobs/notify-next`, '$aws/things/+/jobs/#']) {
      // aedes refuses in SUBACK (0x80); Mosquitto's acl_file grants the SUBSCRIBE and filters every delivery.
      await transport.subscribe([filter]).catch((error: unknown) => {
        expect(error).toMatchObject({ code: 'TRANSPORT_SUBSCRIBE_REJECTED' });
      });
    }
    await transport.subscribe([`outpost/things/${a}/#`]);
    await fleet.publish(`outpost/things/${b}/jobs`, 'for b');
    await fleet.publish(`$aws/things/${b}/jobs/notify-next`, 'for b');
    await fleet.publish(`outpost/things/${a}/jobs`, 'for a');
    expect((await inbox.wait(`outpost/things/${a}/jobs`, 1, MESSAGE_TIMEOUT_MS)).map(String)).toEqual(['for a']);
    expect(inbox.messages.map((m) => m.topic)).toEqual([`outpost/things/${a}/jobs`]);
  });

  it("cannot take over another device's session by claiming its client id", async (context) => {
    context.skip(!installed, 'Mosquitto is not installed');
    const [a, b] = things();
    const victim = await device(b);
    await victim.transport.connect();
    const drops: boolean[] = [];
    victim.transport.onConnectionChange((connected) => drops.push(connected));
    const impostor = await device(a, b);
    // Mosquitto replaces the client id with the certificate's CN (use_username_as_clientid); aedes refuses 0x02.
    await impostor.transport.connect().catch((error: unknown) => {
      expect(error).toMatchObject({ code: 'TRANSPORT_REFUSED' });
    });
    await new Promise((resolve) => setTimeout(resolve, TAKEOVER_WATCH_MS));
    expect(drops).toEqual([]);
    expect(victim.transport.connected).toBe(true);
  });
});

/**
 * The ACL's inference callers (docs/mosquitto-acl.md, "Asynchronous inference callers"): `inference-app` may ask any
 * device's models and read the answers addressed to it; no caller reads another's answers or speaks for a device.
 * MQTT.js peers with real certificates on the device's and the callers' sides (the agent's own answering is
 * test/device-agent/async-infer.test.ts).
 */
describe('inference callers: Mosquitto with docs/examples/mosquitto-acl.conf', () => {
  const installed = mosquittoPath() !== undefined;
  let broker: TestBroker;
  const peers: Peer[] = [];

  beforeAll(async () => {
    if (installed) broker = await startBroker({ kind: 'mosquitto' });
  });
  afterAll(async () => {
    for (const peer of peers) await peer.close();
    if (installed) await broker.stop();
  });

  async function peer(cn: string): Promise<Peer> {
    const pair = await broker.identity(cn);
    const p = await connectPeer(broker.urls.mtls, {
      mqtt5: true,
      clientId: cn,
      ca: broker.ca.ca,
      cert: pair.cert,
      key: pair.key,
    });
    peers.push(p);
    return p;
  }

  it('asks and reads its own answers; cannot read others’ answers or forge a device’s topics', async (context) => {
    context.skip(!installed, 'Mosquitto is not installed');
    const thing = `thing-a-${randomBytes(3).toString('hex')}`;
    const device = await peer(thing);
    const caller = await peer('inference-app');
    const other = await peer('other-app');
    await device.subscribe(`outpost/things/${thing}/#`);
    await caller.subscribe('outpost/things/+/infer-replies/#');
    await other.subscribe('outpost/things/+/infer-replies/#');

    // Not a caller: no `user` block grants other-app a request (MQTT 5: PUBACK 0x87).
    const refused: unknown = await other
      .publish(`outpost/things/${thing}/infer/mlp`, 'from other')
      .catch((e: unknown) => e);
    expect(refused).toMatchObject({ code: 135 });
    // A caller speaks for no device.
    await caller.publish(`outpost/things/${thing}/status`, 'forged').catch(() => undefined);
    await caller.publish(`outpost/things/${thing}/infer/mlp`, 'request');
    const requests = await device.inbox.wait(`outpost/things/${thing}/infer/mlp`, 1, MESSAGE_TIMEOUT_MS);
    expect(requests.map(String)).toEqual(['request']);
    expect(device.inbox.on(`outpost/things/${thing}/status`)).toEqual([]);

    // The device answers under its own prefix; each caller reads only what is addressed to it.
    await device.publish(`outpost/things/${thing}/infer-replies/other-app`, 'for other');
    await device.publish(`outpost/things/${thing}/infer-replies/inference-app`, 'for caller');
    await caller.inbox.wait(`outpost/things/${thing}/infer-replies/inference-app`, 1, MESSAGE_TIMEOUT_MS);
    await other.inbox.wait(`outpost/things/${thing}/infer-replies/other-app`, 1, MESSAGE_TIMEOUT_MS);
    // Same publisher, later message: had the earlier one been delivered to the wrong caller, it would be here now.
    expect(caller.inbox.messages.map((m) => m.topic)).toEqual([`outpost/things/${thing}/infer-replies/inference-app`]);
    expect(other.inbox.messages.map((m) => m.topic)).toEqual([`outpost/things/${thing}/infer-replies/other-app`]);
  });
});
