import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { connect, type IClientOptions, type MqttClient } from 'mqtt';
import { OutpostError, fromFsError, messageOf } from '../runtime/errors.js';
import { logger } from '../runtime/log.js';
import { retry, type RetryEvent, type RetryPolicy } from '../runtime/retry.js';

/**
 * The fleet's one MQTT.js connection. The streams server and the jobs service share it (each subscribes its own
 * filters and ignores the rest), so a deployment is one client on the broker whatever it serves.
 */
export interface FleetTls {
  /** PEM text, or the path of a PEM file. */
  readonly ca?: string;
  readonly cert?: string;
  readonly key?: string;
  /** Verify the broker's certificate (default true). */
  readonly rejectUnauthorized?: boolean;
}

export interface BrokerConnectOptions {
  /** mqtt://, mqtts://, ws:// or wss://. */
  readonly url: string;
  readonly tls?: FleetTls;
  readonly clientId?: string;
  readonly username?: string;
  readonly password?: string;
  /** Give up one connection attempt after this long. */
  readonly connectTimeoutMs?: number; // milliseconds
  /** How the first connection is retried (a broker still starting, a blip); see CONNECT_RETRY. */
  readonly retry?: RetryPolicy;
  /** Before each retry of the first connection (the CLI's progress, tests). */
  readonly onRetry?: (event: RetryEvent) => void;
  /** 4 (MQTT 3.1.1, default) or 5 (shared subscriptions, fleet serve). */
  readonly protocolVersion?: 4 | 5;
}

/**
 * The first connection: a few tries with the agent's jittered backoff (runtime/retry.ts), about 4 s in all, so a
 * broker that is still starting is waited for; a CONNACK refusal (credentials, authorization) fails at once.
 */
export const CONNECT_RETRY: RetryPolicy = Object.freeze({ minMs: 250, maxMs: 2_000, jitter: 0.3, maxAttempts: 5 });

export const DEFAULT_CONNECT_TIMEOUT_MS = 10_000; // milliseconds
/** MQTT.js's own reconnect after the first connection: subscriptions are restored by it (`resubscribe`). */
const RECONNECT_PERIOD_MS = 2_000; // milliseconds
const KEEPALIVE_SECONDS = 30; // seconds; IoT Core accepts 30–1200 (MQTT 3.1.1 §3.1.2.10)

const log = logger('fleet.mqtt');

export async function connectBroker(options: BrokerConnectOptions): Promise<MqttClient> {
  const timeoutMs = options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
  const clientOptions: IClientOptions = {
    // MQTT 3.1.1 by default: every broker Outpost targets speaks it (aedes speaks nothing newer); IoT Core takes either.
    protocolVersion: options.protocolVersion ?? 4,
    clientId: options.clientId ?? `outpost-fleet-${randomBytes(4).toString('hex')}`,
    clean: true,
    keepalive: KEEPALIVE_SECONDS,
    // Not while the first connection is being made: those retries are ours (below), with backoff and jitter.
    reconnectPeriod: 0,
    connectTimeout: timeoutMs,
    ...(options.username === undefined ? {} : { username: options.username }),
    ...(options.password === undefined ? {} : { password: options.password }),
    ...(await tlsOptions(options.tls)),
  };
  const client = await retry(() => attempt(options.url, clientOptions, timeoutMs), {
    policy: options.retry ?? CONNECT_RETRY,
    ...(options.onRetry === undefined ? {} : { onRetry: options.onRetry }),
  });
  // Connected: from now on MQTT.js reconnects by itself, and restores the subscriptions (`resubscribe`).
  client.options.reconnectPeriod = RECONNECT_PERIOD_MS;
  client.on('error', (error) => {
    log.warn({ err: error, url: options.url }, 'broker connection error');
  });
  // Every (re)connection is a new socket: Nagle off on each (see noDelay).
  noDelay(client);
  client.on('connect', () => noDelay(client));
  return client;
}

/**
 * TCP_NODELAY on the connection's socket (TCP and TLS; WebSockets have none). With Nagle on, a small PUBLISH sent
 * while the previous one is unacknowledged waits for the broker's delayed ACK (40 ms on Linux): `fleet infer` and the
 * Jobs replies would pay that on every round trip (the agent's transport does the same, device-agent/transport).
 */
function noDelay(client: MqttClient): void {
  const stream = client.stream as { setNoDelay?: (on: boolean) => unknown } | undefined;
  if (typeof stream?.setNoDelay === 'function') stream.setNoDelay(true);
}

/** One connection attempt: the connected client, or BROKER_UNREACHABLE (retryable, unless the broker refused us). */
async function attempt(url: string, clientOptions: IClientOptions, timeoutMs: number): Promise<MqttClient> {
  const client = connect(url, clientOptions);
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new Error(`no CONNACK within ${timeoutMs} ms`));
      }, timeoutMs);
      client.once('connect', () => {
        clearTimeout(timer);
        resolve();
      });
      client.once('error', (error) => {
        clearTimeout(timer);
        reject(error);
      });
      client.once('close', () => {
        clearTimeout(timer);
        reject(new Error('connection closed before CONNACK'));
      });
    });
  } catch (error) {
    client.end(true);
    // A CONNACK return code [MQTT 3.1.1 §3.2.2.3]: only 3 (server unavailable) can pass without an operator.
    const code = (error as { code?: unknown }).code;
    const refused = typeof code === 'number';
    throw new OutpostError(
      'BROKER_UNREACHABLE',
      `cannot connect to the broker at ${url}: ${messageOf(error)}${refused ? ` (CONNACK ${code})` : ''}`,
      { cause: error, retryable: !refused || code === 3, details: { url, ...(refused ? { connack: code } : {}) } },
    );
  }
  return client;
}

/**
 * MQTT 5 where the broker speaks it (Mosquitto 2, EMQX, HiveMQ, IoT Core), else 3.1.1 (the embedded aedes broker):
 * the version the connection got is returned, since shared subscriptions exist only in 5 [MQTT 5.0 §4.8.2].
 */
export async function connectPreferringMqtt5(
  options: Omit<BrokerConnectOptions, 'protocolVersion'>,
): Promise<{ client: MqttClient; protocolVersion: 4 | 5 }> {
  try {
    return { client: await connectBroker({ ...options, protocolVersion: 5 }), protocolVersion: 5 };
  } catch (error) {
    if (!/protocol|unsupported|unacceptable/i.test(messageOf((error as { cause?: unknown }).cause ?? error)))
      throw error;
    log.info(
      { url: options.url },
      'the broker does not speak MQTT 5: connecting with 3.1.1, without shared subscriptions',
    );
    return { client: await connectBroker({ ...options, protocolVersion: 4 }), protocolVersion: 4 };
  }
}

async function tlsOptions(tls: FleetTls | undefined): Promise<Partial<IClientOptions>> {
  if (tls === undefined) return {};
  const out: Partial<IClientOptions> = { rejectUnauthorized: tls.rejectUnauthorized ?? true };
  if (tls.ca !== undefined) out.ca = await pem(tls.ca);
  if (tls.cert !== undefined) out.cert = await pem(tls.cert);
  if (tls.key !== undefined) out.key = await pem(tls.key);
  return out;
}

async function pem(value: string): Promise<string> {
  if (value.includes('-----BEGIN')) return value;
  try {
    return await readFile(value, 'utf8');
  } catch (error) {
    throw fromFsError(error, value, 'read');
  }
}

/** Ends the connection, waiting for in-flight publishes; forced after `timeoutMs`. */
export async function closeBroker(client: MqttClient, timeoutMs = 2_000): Promise<void> {
  await Promise.race([client.endAsync(false), new Promise<void>((resolve) => setTimeout(resolve, timeoutMs).unref())]);
  if (client.connected) await client.endAsync(true);
}
