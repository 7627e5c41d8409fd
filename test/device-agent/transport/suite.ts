import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { createTransport, type TransportKind } from '../../../device-agent/transport/index.js';
import type { ReconnectPolicy, Transport, TransportOptions } from '../../../device-agent/transport/types.js';
import { isOutpostError } from '../../../runtime/errors.js';
import { startBroker, type BrokerKind, type TestBroker } from '../../helpers/broker.js';
import { ROOT } from '../../helpers/models.js';
import { Inbox, connectPeer, until, type Peer } from '../../helpers/mqtt.js';
import { startProxy, type TcpProxy } from '../../helpers/net.js';

export const TEST_RECONNECT: ReconnectPolicy = Object.freeze({
  minMs: 50,
  maxMs: 400,
  jitter: 0.2,
  resetAfterMs: 1000,
});
export const CONNECT_TIMEOUT_MS = 3_000; // milliseconds for a connect() that should succeed
export const DEAD_BROKER_TIMEOUT_MS = 500; // milliseconds, connectTimeoutMs against nothing listening
export const MESSAGE_TIMEOUT_MS = 8_000; // milliseconds; Mosquitto ingests 128 KiB over WebSockets in ~3 s
export const RECONNECT_TIMEOUT_MS = 5_000; // milliseconds for a reconnect after the network or broker is back
export const OFFLINE_REJECT_MS = 100; // milliseconds: "rejects fast" when offline
export const CHILD_EXIT_TIMEOUT_MS = 15_000; // milliseconds for a tsx child to start, do its work and exit
export const BINARY_SIZES = Object.freeze([0, 1, 4096, 128 * 1024]); // bytes; 128 KiB is IoT Core's message limit

export interface TransportVariant {
  readonly name: string;
  readonly kind: TransportKind;
  readonly listener: 'tcp' | 'mtls' | 'ws' | 'wss';
  /** Default: whichever broker the harness finds (Mosquitto, else aedes). */
  readonly broker?: BrokerKind;
  /** The aws-iot transport speaks only MQTT 5, which aedes lacks. */
  readonly needsMqtt5?: boolean;
}

function urlFor(variant: TransportVariant, port: number): string {
  switch (variant.listener) {
    case 'tcp':
      return `mqtt://127.0.0.1:${port}`;
    case 'mtls':
      return `mqtts://localhost:${port}`;
    case 'ws':
      return `ws://127.0.0.1:${port}`;
    case 'wss':
      return `wss://localhost:${port}`;
  }
}

/**
 * The behaviour every Transport owes the agent, run against one implementation on one real broker. Call inside a
 * describe block (`describe.each(VARIANTS)('$name', transportSuite)`).
 */
export function transportSuite(variant: TransportVariant): void {
  {
    let broker: TestBroker;
    const cleanups: (() => Promise<void>)[] = [];
    let unsupported = false;

    beforeAll(async () => {
      broker = await startBroker({ kind: variant.broker });
      unsupported = variant.needsMqtt5 === true && !broker.mqtt5;
      if (unsupported) process.stderr.write(`${variant.name}: skipped, the ${broker.kind} broker has no MQTT 5\n`);
    });
    afterEach(async () => {
      for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
    });
    afterAll(async () => {
      await broker.stop();
    });

    const brokerPort = (): number => {
      const port = broker.ports[variant.listener];
      if (port === undefined) throw new Error(`the ${broker.kind} test broker has no ${variant.listener} listener`);
      return port;
    };
    let serial = 0;
    const thingName = () => `t-${variant.kind}-${variant.listener}-${++serial}-${randomBytes(3).toString('hex')}`;

    /** Transport options for a thing, reaching the broker at `port` (a proxy's, or the broker's own). */
    async function optionsFor(thing: string, port: number): Promise<TransportOptions> {
      const pair = variant.listener === 'mtls' || variant.listener === 'wss' ? await broker.identity(thing) : undefined;
      return {
        url: urlFor(variant, port),
        clientId: thing,
        tls: pair && { ca: broker.ca.ca, cert: pair.cert, key: pair.key },
        reconnect: TEST_RECONNECT,
        connectTimeoutMs: CONNECT_TIMEOUT_MS,
        keepaliveSeconds: 30,
      };
    }

    /** A transport behind a proxy the test can cut; not yet connected. Closed after the test. */
    async function open(extra: (thing: string) => Partial<TransportOptions> = () => ({})) {
      const thing = thingName();
      const proxy: TcpProxy = await startProxy(brokerPort());
      const options = { ...(await optionsFor(thing, proxy.port)), ...extra(thing) };
      const transport: Transport = createTransport(variant.kind, options);
      cleanups.push(
        () => proxy.close(),
        () => transport.close(),
      );
      return {
        thing,
        proxy,
        transport,
        inbox: Inbox.of(transport),
        topic: (leaf: string) => `outpost/things/${thing}/${leaf}`,
      };
    }

    async function peer(): Promise<Peer> {
      const p = await connectPeer(broker.urls.tcp, { mqtt5: broker.mqtt5 });
      cleanups.push(() => p.close());
      return p;
    }

    const offline = (transport: Transport) =>
      until(() => !transport.connected, RECONNECT_TIMEOUT_MS, 'the transport to notice it is offline');

    it('connects, reports every connection change and closes', async (context) => {
      context.skip(unsupported);
      const { transport } = await open();
      const changes: boolean[] = [];
      transport.onConnectionChange((connected) => changes.push(connected));
      expect(transport.connected).toBe(false);
      await transport.connect();
      expect(transport.connected).toBe(true);
      await transport.close();
      expect(changes).toEqual([true, false]);
      await expect(transport.publish('outpost/x', 'late')).rejects.toMatchObject({ code: 'TRANSPORT_CLOSED' });
    });

    it('round-trips QoS 1 messages both ways', async (context) => {
      context.skip(unsupported);
      const { transport, inbox, topic } = await open();
      const other = await peer();
      await transport.connect();
      await transport.subscribe([topic('down')]);
      await other.subscribe(topic('up'));
      await other.publish(topic('down'), 'to the device');
      await transport.publish(topic('up'), 'from the device', { qos: 1 });
      expect((await inbox.wait(topic('down'), 1, MESSAGE_TIMEOUT_MS)).map(String)).toEqual(['to the device']);
      expect((await other.inbox.wait(topic('up'), 1, MESSAGE_TIMEOUT_MS)).map(String)).toEqual(['from the device']);
    });

    it('carries binary payloads up to 128 KiB unchanged', async (context) => {
      context.skip(unsupported);
      const { transport, inbox, topic } = await open();
      await transport.connect();
      await transport.subscribe([topic('blocks')]);
      const payloads = BINARY_SIZES.map((size) => randomBytes(size));
      for (const payload of payloads) await transport.publish(topic('blocks'), payload);
      const received = await inbox.wait(topic('blocks'), payloads.length, MESSAGE_TIMEOUT_MS);
      expect(received.map((p) => p.length)).toEqual([...BINARY_SIZES]);
      received.forEach((p, i) => expect(p.equals(payloads[i] ?? Buffer.alloc(0))).toBe(true));
    });

    it('keeps the session: messages published while offline arrive after reconnecting', async (context) => {
      context.skip(unsupported);
      const { transport, proxy, inbox, topic } = await open();
      const other = await peer();
      await transport.connect();
      await transport.subscribe([topic('queued')]);
      await proxy.down();
      await offline(transport);
      for (const n of [1, 2, 3]) await other.publish(topic('queued'), `while offline ${n}`);
      await proxy.up();
      const received = await inbox.wait(topic('queued'), 3, RECONNECT_TIMEOUT_MS);
      expect(received.map(String)).toEqual(['while offline 1', 'while offline 2', 'while offline 3']);
    });

    it('has its last will published when the connection dies, and not when it closes', async (context) => {
      context.skip(unsupported);
      const other = await peer();
      const will = (thing: string) => ({
        will: { topic: `outpost/things/${thing}/status`, payload: 'offline', qos: 1 as const, retain: false },
      });
      const lost = await open(will);
      const closed = await open(will);
      await other.subscribe('outpost/things/+/status');
      await Promise.all([lost.transport.connect(), closed.transport.connect()]);
      await lost.proxy.down(); // the socket dies without DISCONNECT [MQTT 5.0 §3.1.2.5]
      await closed.transport.close(); // DISCONNECT 0x00 discards the will [MQTT 5.0 §3.14.4]
      await other.publish(closed.topic('status'), 'sentinel');
      expect((await other.inbox.wait(lost.topic('status'), 1, MESSAGE_TIMEOUT_MS)).map(String)).toEqual(['offline']);
      await other.inbox.wait(closed.topic('status'), 1, MESSAGE_TIMEOUT_MS);
      expect(other.inbox.on(closed.topic('status')).map(String)).toEqual(['sentinel']);
    });

    it('reconnects after a broker restart and subscribes again', async (context) => {
      context.skip(unsupported);
      const { transport, inbox, topic } = await open();
      const changes: boolean[] = [];
      transport.onConnectionChange((connected) => changes.push(connected));
      await transport.connect();
      await transport.subscribe([topic('after-restart')]);
      await broker.restart(); // persistence is off: the session, and our subscription in it, are gone
      await until(() => changes.length >= 3 && transport.connected, RECONNECT_TIMEOUT_MS, 'a reconnect');
      const other = await peer();
      await other.publish(topic('after-restart'), 'still subscribed');
      expect((await inbox.wait(topic('after-restart'), 1, MESSAGE_TIMEOUT_MS)).map(String)).toEqual([
        'still subscribed',
      ]);
    });

    it('rejects connect() after the timeout when the broker is down, then connects by itself', async (context) => {
      context.skip(unsupported);
      const { transport, proxy, inbox, topic } = await open(() => ({ connectTimeoutMs: DEAD_BROKER_TIMEOUT_MS }));
      await proxy.down();
      const started = Date.now();
      const error: unknown = await transport.connect().catch((e: unknown) => e);
      const waited = Date.now() - started;
      expect(isOutpostError(error, 'TRANSPORT_CONNECT_FAILED')).toBe(true);
      expect(waited).toBeGreaterThanOrEqual(DEAD_BROKER_TIMEOUT_MS - 5);
      expect(waited).toBeLessThan(DEAD_BROKER_TIMEOUT_MS + 1_000);
      await proxy.up();
      await until(() => transport.connected, RECONNECT_TIMEOUT_MS, 'the background reconnect');
      await transport.subscribe([topic('late')]);
      await transport.publish(topic('late'), 'made it');
      expect((await inbox.wait(topic('late'), 1, MESSAGE_TIMEOUT_MS)).map(String)).toEqual(['made it']);
    });

    it('rejects publish and subscribe at once while offline, so callers can spool', async (context) => {
      context.skip(unsupported);
      const { transport, proxy, topic } = await open();
      await transport.connect();
      await proxy.down();
      await offline(transport);
      for (const attempt of [
        () => transport.publish(topic('report'), '{"status":"IN_PROGRESS"}'),
        () => transport.subscribe([topic('more')]),
      ]) {
        const started = Date.now();
        const error: unknown = await attempt().catch((e: unknown) => e);
        expect(Date.now() - started).toBeLessThan(OFFLINE_REJECT_MS);
        expect(error).toMatchObject({ code: 'TRANSPORT_OFFLINE', retryable: true });
      }
    });

    it('leaves nothing running after close(): a process that used it exits by itself', async (context) => {
      context.skip(unsupported);
      const options = await optionsFor(thingName(), brokerPort());
      const fixture = join(ROOT, 'test', 'device-agent', 'transport', 'fixtures', 'close-exits.ts');
      const { code, stdout, stderr } = await new Promise<{ code: number; stdout: string; stderr: string }>(
        (resolve) => {
          execFile(
            process.execPath,
            ['--import', 'tsx', fixture, variant.kind, JSON.stringify(options)],
            { cwd: ROOT, timeout: CHILD_EXIT_TIMEOUT_MS, env: { ...process.env, OUTPOST_LOG_LEVEL: 'silent' } },
            (error, out, err) => {
              resolve({
                code: error === null ? 0 : typeof error.code === 'number' ? error.code : -1,
                stdout: out,
                stderr: err,
              });
            },
          );
        },
      );
      expect({ code, stderr }).toEqual({ code: 0, stderr: '' });
      expect(stdout.trim()).toBe('round trip ok; closed');
    });
  }
}
