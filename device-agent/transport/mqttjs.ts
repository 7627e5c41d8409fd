import type { IClientOptions, IConnackPacket, IPublishPacket, MqttClient, connect as mqttConnect } from 'mqtt';
import { OutpostError, messageOf } from '../../runtime/errors.js';
import { logger, type Logger } from '../../runtime/log.js';
import { Backoff } from './backoff.js';
import {
  isFailure,
  isRetryableAckFailure,
  isRetryableConnackRefusal,
  isUnsupportedProtocol,
  reasonName,
  type ProtocolVersion,
} from './reason-codes.js';
import {
  CLOSE_TIMEOUT_MS,
  DEFAULT_CONNECT_TIMEOUT_MS,
  DEFAULT_KEEPALIVE_SECONDS,
  DEFAULT_SESSION_EXPIRY_SECONDS,
  TransportState,
  parseBrokerUrl,
  redactUrl,
  toBuffer,
} from './state.js';
import { readTls, type TlsMaterial } from './tls.js';
import {
  DEFAULT_RECONNECT,
  type IncomingMessage,
  type MessageProperties,
  type PublishOptions,
  type Qos,
  type Transport,
  type TransportOptions,
} from './types.js';

export const MQTTJS_PROTOCOLS = Object.freeze(['mqtt:', 'mqtts:', 'ws:', 'wss:']);
export const ATTEMPT_TIMEOUT_MS = 10_000; // milliseconds, socket + TLS + CONNACK for one connection attempt

export interface MqttJsOptions extends TransportOptions {
  /** 5 (MQTT 5) or 4 (MQTT 3.1.1). Unset: MQTT 5, falling back to 3.1.1 when the broker refuses 5 (aedes does). */
  readonly protocolVersion?: ProtocolVersion;
}

/**
 * MQTT.js behind the Transport interface, for any broker over TCP, TLS (mTLS) or WebSockets.
 *
 * Reconnects are ours, not MQTT.js's (its `reconnectPeriod` is one fixed period, no backoff, no jitter): every
 * attempt is a fresh MqttClient with `reconnectPeriod: 0`; a lost connection schedules the next attempt after a
 * jittered exponential delay. What a connection must carry across attempts lives on the broker (the persistent
 * session) or in TransportState (our subscriptions), so nothing is lost by discarding the client object.
 */
export class MqttJsTransport implements Transport {
  readonly name = 'mqtt.js';
  private readonly state: TransportState;
  private readonly backoff: Backoff;
  private readonly log: Logger;
  private version: ProtocolVersion;
  private client: MqttClient | undefined;
  private starting: Promise<void> | undefined;
  /** MQTT.js, loaded at the first connect(): an agent serves before it pays for its broker client (docs/agent-footprint.md). */
  private mqttConnect: typeof mqttConnect | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  /** The broker refused MQTT 5: retry at once with 3.1.1 instead of backing off. */
  private fallback = false;

  constructor(private readonly options: MqttJsOptions) {
    parseBrokerUrl(options.url, MQTTJS_PROTOCOLS, 'mqtts://host:8883');
    const url = redactUrl(options.url);
    this.log = logger('agent.transport').child({ transport: this.name, url, clientId: options.clientId });
    this.state = new TransportState(this.log, url);
    this.backoff = new Backoff(options.reconnect ?? DEFAULT_RECONNECT);
    this.version = options.protocolVersion ?? 5;
  }

  get connected(): boolean {
    return this.state.connected;
  }

  get protocolVersion(): ProtocolVersion {
    return this.version;
  }

  async connect(): Promise<void> {
    if (this.state.closed) throw this.state.closedError('connect');
    this.starting ??= Promise.all([readTls(this.options.tls), import('mqtt')]).then(([tls, mqtt]) => {
      // MQTT.js is CommonJS bundled into dist/ (tsup.config.ts): there its dynamic import has only a default export.
      const namespace = mqtt as Partial<typeof mqtt> & { default?: typeof mqtt };
      this.mqttConnect = namespace.connect ?? namespace.default?.connect;
      this.attempt(tls);
    });
    await this.starting;
    await this.state.waitForConnection(this.options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS);
  }

  async publish(topic: string, payload: string | Uint8Array, options: PublishOptions = {}): Promise<void> {
    this.state.assertOnline(`publish to ${topic}`);
    const client = this.current();
    const qos = options.qos ?? 1;
    const properties = this.version === 5 && options.properties ? publishProperties(options.properties) : undefined;
    const publishOptions = { qos, retain: options.retain ?? false, ...(properties ? { properties } : {}) };
    await new Promise<void>((resolve, reject) => {
      client.publish(topic, toBuffer(payload), publishOptions, (error) => {
        // MQTT.js passes null or undefined on success, whatever its types say.
        if (!error) resolve();
        else reject(this.ackError(error, `publish to ${topic}`));
      });
    });
  }

  async subscribe(filters: readonly string[], qos: Qos = 1): Promise<void> {
    this.state.assertOnline(`subscribe to ${filters.join(', ')}`);
    const codes = await this.subscribeOn(this.current(), filters, qos);
    this.state.subscriptions.granted(filters, qos, codes, this.version);
  }

  async unsubscribe(filters: readonly string[]): Promise<void> {
    this.state.assertOnline(`unsubscribe from ${filters.join(', ')}`);
    const client = this.current();
    await new Promise<void>((resolve, reject) => {
      client.unsubscribe([...filters], (error) => {
        // MQTT.js passes null or undefined on success, whatever its types say.
        if (!error) resolve();
        else reject(this.ackError(error, `unsubscribe from ${filters.join(', ')}`));
      });
    });
    this.state.subscriptions.remove(filters);
  }

  onMessage(handler: (message: IncomingMessage) => void): () => void {
    return this.state.onMessage(handler);
  }

  onConnectionChange(handler: (connected: boolean) => void): () => void {
    return this.state.onConnectionChange(handler);
  }

  /** DISCONNECT politely (the will is not published [MQTT 5.0 §3.1.2.5]), after in-flight acks or CLOSE_TIMEOUT_MS. */
  async close(): Promise<void> {
    if (this.state.closed) return;
    this.state.close();
    this.backoff.cancel();
    clearTimeout(this.retryTimer);
    const client = this.client;
    this.client = undefined;
    if (client !== undefined) await endClient(client);
    this.log.debug('closed');
  }

  private current(): MqttClient {
    if (this.client === undefined) throw this.state.closedError('use the connection');
    return this.client;
  }

  private attempt(tls: TlsMaterial): void {
    if (this.state.closed || this.mqttConnect === undefined) return;
    const client = this.mqttConnect(this.options.url, this.clientOptions(tls));
    this.client = client;
    let up = false;
    client.on('connect', (connack) => {
      up = true;
      noDelay(client);
      void this.onConnected(client, connack);
    });
    client.on('message', (topic, payload, packet) => {
      const properties = incomingProperties(packet);
      this.state.deliver(properties === undefined ? { topic, payload } : { topic, payload, properties });
    });
    client.on('error', (error) => {
      this.onError(client, error, up);
    });
    client.on('disconnect', (packet) => {
      // A server DISCONNECT names its reason [MQTT 5.0 §3.14.2.1], e.g. 0x8E when another client took our id.
      this.state.lastError = new Error(`the broker disconnected us: ${reasonName(packet.reasonCode ?? 0)}`);
      this.log.warn({ reasonCode: packet.reasonCode }, 'broker sent DISCONNECT');
    });
    client.on('close', () => {
      this.onClosed(client, up, tls);
    });
  }

  private clientOptions(tls: TlsMaterial): IClientOptions {
    const { options } = this;
    const persistent = options.persistentSession ?? true;
    const will = options.will;
    return {
      clientId: options.clientId,
      protocolVersion: this.version,
      // [MQTT 5.0 §3.1.2.4] Clean Start 0 resumes the session; with 3.1.1 Clean Session 0 [MQTT 3.1.1 §3.1.2.4].
      clean: !persistent,
      keepalive: options.keepaliveSeconds ?? DEFAULT_KEEPALIVE_SECONDS,
      reconnectPeriod: 0,
      connectTimeout: ATTEMPT_TIMEOUT_MS,
      resubscribe: false,
      queueQoSZero: false,
      // MQTT.js's default pre-builds 65,536 two-byte Buffers of message ids on the first write (≈ 6 MB of heap, 50 ms):
      // writing the two bytes per packet instead costs nothing measurable (docs/agent-footprint.md).
      writeCache: false,
      username: options.username,
      password: options.password,
      ca: tls.ca,
      cert: tls.cert,
      key: tls.key,
      rejectUnauthorized: tls.rejectUnauthorized,
      will: will && { topic: will.topic, payload: Buffer.from(will.payload), qos: will.qos, retain: will.retain },
      // [MQTT 5.0 §3.1.2.11.2] Session Expiry Interval: 0 ends the session with the connection.
      properties:
        this.version === 5
          ? { sessionExpiryInterval: persistent ? (options.sessionExpirySeconds ?? DEFAULT_SESSION_EXPIRY_SECONDS) : 0 }
          : undefined,
    };
  }

  private async onConnected(client: MqttClient, connack: IConnackPacket): Promise<void> {
    if (client !== this.client) return;
    this.state.lastError = undefined;
    this.backoff.connected();
    // [MQTT 5.0 §3.2.2.1.1] Session Present 0: the broker has no subscriptions of ours (expired, restarted, new).
    if (!connack.sessionPresent && this.state.subscriptions.size > 0) {
      await this.state.subscriptions.restore((filters, qos) => this.subscribeOn(client, filters, qos), this.log);
    }
    if (client !== this.client || !client.connected) return;
    this.log.info({ sessionPresent: connack.sessionPresent, protocolVersion: this.version }, 'connected');
    this.state.setConnected(true);
  }

  private subscribeOn(client: MqttClient, filters: readonly string[], qos: Qos): Promise<number[]> {
    const request = Object.fromEntries(filters.map((filter) => [filter, { qos }]));
    return new Promise((resolve, reject) => {
      client.subscribe(request, (error, _granted, suback) => {
        // SUBACK carries one code per filter, in order [MQTT 5.0 §3.9.3]; MQTT.js errs on any failure code.
        const granted: readonly unknown[] = suback?.granted ?? [];
        const codes = granted.filter((code): code is number => typeof code === 'number');
        if (codes.length === filters.length) resolve(codes);
        else reject(this.ackError(error ?? new Error('SUBACK without a code per filter'), 'subscribe'));
      });
    });
  }

  private onError(client: MqttClient, error: Error, up: boolean): void {
    if (client !== this.client) return;
    const code = (error as { code?: unknown }).code;
    if (up || typeof code !== 'number') {
      // Socket, TLS and keep-alive failures: the 'close' that follows schedules the next attempt.
      this.state.lastError = error;
      this.log.debug({ err: error }, 'connection error');
      return;
    }
    if (isUnsupportedProtocol(code) && this.version === 5 && this.options.protocolVersion === undefined) {
      this.log.info('the broker refused MQTT 5; using MQTT 3.1.1 (no session expiry, no reason codes)');
      this.version = 4;
      this.fallback = true;
      return;
    }
    const retryable = isRetryableConnackRefusal(code, this.version);
    const refusal = new OutpostError(
      retryable ? 'TRANSPORT_CONNECT_FAILED' : 'TRANSPORT_REFUSED',
      `${redactUrl(this.options.url)} refused client ${this.options.clientId}: ${reasonName(code, this.version, 'connack')}`,
      { cause: error, details: { url: redactUrl(this.options.url), clientId: this.options.clientId, code } },
    );
    this.state.lastError = refusal;
    this.log.error({ code }, refusal.message);
    // Refusals an operator must fix fail connect() now; the transport keeps retrying in case they do.
    if (!retryable) this.state.failWaiters(refusal);
  }

  private onClosed(client: MqttClient, up: boolean, tls: TlsMaterial): void {
    if (client !== this.client) return;
    this.client = undefined;
    // In-flight QoS 1 publishes are failed, not kept for resending on a resumed session [MQTT 5.0 §4.4]: their
    // callers spool them and publish again, so a message is never both spooled and silently resent.
    for (const id of Object.keys(client.outgoing)) client.removeOutgoingMessage(Number(id));
    client.end(true);
    if (up) {
      this.backoff.cancel();
      this.log.warn({ err: this.state.lastError }, 'connection lost');
      this.state.setConnected(false);
    }
    if (this.state.closed) return;
    const delay = this.fallback ? 0 : this.backoff.next();
    this.fallback = false;
    this.log.debug({ delayMs: delay }, 'reconnecting');
    this.retryTimer = setTimeout(() => {
      this.attempt(tls);
    }, delay);
  }

  private ackError(error: Error, operation: string): OutpostError {
    const code = (error as { code?: unknown }).code;
    if (typeof code === 'number' && isFailure(code)) {
      return new OutpostError(
        operation.startsWith('subscribe') ? 'TRANSPORT_SUBSCRIBE_REJECTED' : 'TRANSPORT_PUBLISH_REJECTED',
        `the broker refused to ${operation}: ${reasonName(code, this.version)}`,
        { cause: error, retryable: isRetryableAckFailure(code), details: { code } },
      );
    }
    // 'Message removed' / 'Connection closed': the connection went before the broker acknowledged.
    return new OutpostError('TRANSPORT_OFFLINE', `cannot ${operation}: connection lost (${messageOf(error)})`, {
      cause: error,
    });
  }
}

type PublishProperties = NonNullable<IPublishPacket['properties']>;

/** Our properties as MQTT.js writes them [MQTT 5.0 §3.3.2.3]. */
function publishProperties(p: MessageProperties): PublishProperties {
  return {
    ...(p.responseTopic === undefined ? {} : { responseTopic: p.responseTopic }),
    ...(p.correlationData === undefined ? {} : { correlationData: p.correlationData }),
    ...(p.contentType === undefined ? {} : { contentType: p.contentType }),
    ...(p.userProperties === undefined ? {} : { userProperties: { ...p.userProperties } }),
  };
}

/** What request/response needs of a received PUBLISH's properties; undefined when it carried none (MQTT 3.1.1). */
function incomingProperties(packet: IPublishPacket): MessageProperties | undefined {
  const p = packet.properties;
  if (p === undefined) return undefined;
  const user: Record<string, string> = {};
  for (const [name, value] of Object.entries(p.userProperties ?? {})) {
    const first = Array.isArray(value) ? value[0] : value;
    if (typeof first === 'string') user[name] = first;
  }
  return {
    ...(p.responseTopic === undefined ? {} : { responseTopic: p.responseTopic }),
    ...(p.correlationData === undefined ? {} : { correlationData: Buffer.from(p.correlationData) }),
    ...(p.contentType === undefined ? {} : { contentType: p.contentType }),
    ...(Object.keys(user).length === 0 ? {} : { userProperties: user }),
  };
}

/**
 * TCP_NODELAY on the connection's socket (TCP and TLS; WebSockets have none to set). With Nagle's algorithm on, a
 * small PUBLISH written while the previous one is unacknowledged waits for the peer's delayed ACK (40 ms on Linux):
 * request/response over MQTT (asynchronous inference, Jobs replies) would pay that on every round trip.
 */
function noDelay(client: MqttClient): void {
  const stream = client.stream as { setNoDelay?: (on: boolean) => unknown };
  if (typeof stream.setNoDelay === 'function') stream.setNoDelay(true);
}

/** Graceful end (DISCONNECT after in-flight acks), or destroy the socket when that takes longer than allowed. */
function endClient(client: MqttClient): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      client.stream.destroy();
      resolve();
    }, CLOSE_TIMEOUT_MS);
    client.end(!client.connected, () => {
      clearTimeout(timer);
      resolve();
    });
  });
}
