import type * as AwsIotSdk from 'aws-iot-device-sdk-v2';
import type { mqtt5 } from 'aws-iot-device-sdk-v2';
import { OutpostError, messageOf } from '../../runtime/errors.js';
import { logger, type Logger } from '../../runtime/log.js';
import { payloadBuffer, releaseClosedClient } from './crt.js';
import { isFailure, isRetryableAckFailure, isRetryableConnackRefusal, reasonName } from './reason-codes.js';
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

type Sdk = typeof AwsIotSdk;

export const AWS_IOT_PORT = 8883; // AWS IoT Core's MQTT over mTLS port ("Protocols, port mappings, and authentication")
export const CONNACK_TIMEOUT_MS = 10_000; // milliseconds, one attempt's wait for CONNACK

/**
 * aws-iot-device-sdk-v2's MQTT 5 client (the AWS CRT) behind the Transport interface: mTLS to AWS IoT Core, or to
 * any MQTT 5 broker that authenticates client certificates (Mosquitto with `require_certificate`).
 *
 * Reconnects are the SDK's: exponential backoff with full jitter between min and max delay (`retryJitterMode`),
 * reset after a connection has lasted `resetAfterMs`. Sessions: `RejoinPostSuccess` starts clean once per process
 * and rejoins on every reconnect after that, so a restarted agent never inherits a half-finished session whose
 * in-flight publishes the SDK could not have kept (the SDK holds no session state on disk).
 *
 * The SDK (and its native CRT) is loaded on first connect(), so agents on MQTT.js never pay for it.
 */
export class AwsIotTransport implements Transport {
  readonly name = 'aws-iot-device-sdk-v2';
  private readonly state: TransportState;
  private readonly log: Logger;
  private readonly host: string;
  private readonly port: number;
  private client: mqtt5.Mqtt5Client | undefined;
  private sdk: Sdk | undefined;
  private starting: Promise<void> | undefined;

  constructor(private readonly options: TransportOptions) {
    // mqtts:// only: AWS IoT Core's data endpoint, or any MQTT 5 broker that authenticates client certificates.
    const url = parseBrokerUrl(options.url, ['mqtts:'], 'mqtts://<prefix>-ats.iot.<region>.amazonaws.com:8883');
    this.host = url.hostname;
    this.port = url.port === '' ? AWS_IOT_PORT : Number(url.port);
    if (options.password !== undefined) {
      throw new OutpostError(
        'CONFIG_INVALID',
        'the aws-iot transport authenticates with a client certificate (tls.cert, tls.key), not a password',
      );
    }
    const redacted = redactUrl(options.url);
    this.log = logger('agent.transport').child({ transport: this.name, url: redacted, clientId: options.clientId });
    this.state = new TransportState(this.log, redacted);
  }

  get connected(): boolean {
    return this.state.connected;
  }

  async connect(): Promise<void> {
    if (this.state.closed) throw this.state.closedError('connect');
    this.starting ??= this.start();
    await this.starting;
    await this.state.waitForConnection(this.options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS);
  }

  /** The CRT's Mqtt5Client speaks MQTT 5 only. */
  readonly protocolVersion = 5;

  async publish(topic: string, payload: string | Uint8Array, options: PublishOptions = {}): Promise<void> {
    this.state.assertOnline(`publish to ${topic}`);
    const client = this.current();
    const sdk = this.loaded();
    let puback: mqtt5.PublishCompletionResult;
    try {
      puback = await client.publish({
        topicName: topic,
        payload: toBuffer(payload),
        qos: qosOf(sdk, options.qos ?? 1),
        retain: options.retain ?? false,
        ...(options.properties === undefined ? {} : crtProperties(options.properties)),
      });
    } catch (error) {
      throw this.operationError(error, `publish to ${topic}`);
    }
    // QoS 0 completes without a PUBACK; 0x10 "No matching subscribers" is a success [MQTT 5.0 §3.4.2.1].
    if (puback !== undefined && isFailure(puback.reasonCode)) {
      throw new OutpostError(
        'TRANSPORT_PUBLISH_REJECTED',
        `the broker refused to publish to ${topic}: ${reasonName(puback.reasonCode)}`,
        { retryable: isRetryableAckFailure(puback.reasonCode), details: { topic, code: puback.reasonCode } },
      );
    }
  }

  async subscribe(filters: readonly string[], qos: Qos = 1): Promise<void> {
    this.state.assertOnline(`subscribe to ${filters.join(', ')}`);
    const codes = await this.subscribeOn(this.current(), filters, qos);
    this.state.subscriptions.granted(filters, qos, codes);
  }

  async unsubscribe(filters: readonly string[]): Promise<void> {
    this.state.assertOnline(`unsubscribe from ${filters.join(', ')}`);
    try {
      await this.current().unsubscribe({ topicFilters: [...filters] });
    } catch (error) {
      throw this.operationError(error, `unsubscribe from ${filters.join(', ')}`);
    }
    this.state.subscriptions.remove(filters);
  }

  onMessage(handler: (message: IncomingMessage) => void): () => void {
    return this.state.onMessage(handler);
  }

  onConnectionChange(handler: (connected: boolean) => void): () => void {
    return this.state.onConnectionChange(handler);
  }

  /** DISCONNECT with reason 0x00 (the will is not published [MQTT 5.0 §3.14.4]), then free the native client. */
  async close(): Promise<void> {
    if (this.state.closed) return;
    this.state.close();
    await this.starting?.catch(() => undefined);
    const client = this.client;
    this.client = undefined;
    if (client === undefined) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, CLOSE_TIMEOUT_MS);
      client.once('stopped', () => {
        clearTimeout(timer);
        resolve();
      });
      client.stop({ reasonCode: this.loaded().mqtt5.DisconnectReasonCode.NormalDisconnection });
    });
    client.close();
    releaseClosedClient();
    this.log.debug('closed');
  }

  private current(): mqtt5.Mqtt5Client {
    if (this.client === undefined) throw this.state.closedError('use the connection');
    return this.client;
  }

  private loaded(): Sdk {
    if (this.sdk === undefined) throw this.state.closedError('use the connection');
    return this.sdk;
  }

  private async start(): Promise<void> {
    const tls = await readTls(this.options.tls);
    const sdk = await import('aws-iot-device-sdk-v2');
    if (this.state.closed) return;
    this.sdk = sdk;
    const client = new sdk.mqtt5.Mqtt5Client(this.config(sdk, tls));
    this.client = client;
    client.on('error', (error) => {
      this.state.lastError = error;
      this.log.warn({ err: error }, 'client error');
    });
    client.on('connectionSuccess', ({ settings }) => {
      void this.onConnected(client, settings.rejoinedSession);
    });
    client.on('connectionFailure', ({ error, connack }) => {
      this.onFailure(error, connack?.reasonCode);
    });
    client.on('disconnection', ({ error, disconnect }) => {
      this.state.lastError = error;
      if (this.state.connected) this.log.warn({ err: error, reasonCode: disconnect?.reasonCode }, 'connection lost');
      this.state.setConnected(false);
    });
    client.on('messageReceived', ({ message }) => {
      const properties = receivedProperties(message);
      const payload = payloadBuffer(message.payload);
      this.state.deliver({ topic: message.topicName, payload, ...(properties === undefined ? {} : { properties }) });
    });
    client.start();
  }

  private config(sdk: Sdk, tls: TlsMaterial): mqtt5.Mqtt5ClientConfig {
    const { options } = this;
    if (tls.cert === undefined || tls.key === undefined) {
      throw new OutpostError('CONFIG_INVALID', 'the aws-iot transport needs tls.cert and tls.key (PEM text or paths)');
    }
    const { mqtt5: m5, iot, io } = sdk;
    const reconnect = options.reconnect ?? DEFAULT_RECONNECT;
    const persistent = options.persistentSession ?? true;
    const will = options.will;
    // ALPN "x-amzn-mqtt-ca" is only offered (AWS IoT needs it on port 443); brokers without ALPN ignore it.
    const builder = iot.AwsIotMqtt5ClientConfigBuilder.newDirectMqttBuilderWithMtlsFromMemory(
      this.host,
      tls.cert,
      tls.key,
    )
      .withPort(this.port)
      .withConnectProperties({
        clientId: options.clientId,
        keepAliveIntervalSeconds: options.keepaliveSeconds ?? DEFAULT_KEEPALIVE_SECONDS,
        // [MQTT 5.0 §3.1.2.11.2] 0 ends the session with the connection.
        sessionExpiryIntervalSeconds: persistent ? (options.sessionExpirySeconds ?? DEFAULT_SESSION_EXPIRY_SECONDS) : 0,
        will: will && {
          topicName: will.topic,
          payload: Buffer.from(will.payload),
          qos: qosOf(sdk, will.qos),
          retain: will.retain,
        },
        willDelayIntervalSeconds: 0,
      })
      .withSessionBehavior(persistent ? m5.ClientSessionBehavior.RejoinPostSuccess : m5.ClientSessionBehavior.Clean)
      .withRetryJitterMode(reconnect.jitter > 0 ? m5.RetryJitterType.Full : m5.RetryJitterType.None)
      .withMinReconnectDelayMs(reconnect.minMs)
      .withMaxReconnectDelayMs(reconnect.maxMs)
      .withMinConnectedTimeToResetReconnectDelayMs(reconnect.resetAfterMs ?? DEFAULT_RECONNECT.resetAfterMs)
      .withConnackTimeoutMs(CONNACK_TIMEOUT_MS)
      // Fail what is queued or in flight when the connection drops, and refuse new work while offline: the
      // agent spools instead, exactly as with MQTT.js.
      .withOfflineQueueBehavior(m5.ClientOperationQueueBehavior.FailAllOnDisconnect);
    if (tls.ca !== undefined) builder.withCertificateAuthority(tls.ca);
    const config = builder.build();
    if (!tls.rejectUnauthorized) {
      const insecure = io.TlsContextOptions.create_client_with_mtls(tls.cert, tls.key);
      insecure.verify_peer = false;
      config.tlsCtx = new io.ClientTlsContext(insecure);
    }
    return config;
  }

  private async onConnected(client: mqtt5.Mqtt5Client, rejoined: boolean): Promise<void> {
    this.state.lastError = undefined;
    // Not rejoined: the broker lost our session (restart, expiry), so our subscriptions are gone with it.
    if (!rejoined && this.state.subscriptions.size > 0) {
      await this.state.subscriptions.restore((filters, qos) => this.subscribeOn(client, filters, qos), this.log);
    }
    if (client !== this.client) return;
    this.log.info({ rejoinedSession: rejoined }, 'connected');
    this.state.setConnected(true);
  }

  private onFailure(error: unknown, code: number | undefined): void {
    this.state.lastError = error;
    if (code === undefined || !isFailure(code)) {
      this.log.debug({ err: error }, 'connection attempt failed');
      return;
    }
    const retryable = isRetryableConnackRefusal(code, 5);
    const refusal = new OutpostError(
      retryable ? 'TRANSPORT_CONNECT_FAILED' : 'TRANSPORT_REFUSED',
      `${redactUrl(this.options.url)} refused client ${this.options.clientId}: ${reasonName(code, 5, 'connack')}`,
      { cause: error, details: { url: redactUrl(this.options.url), clientId: this.options.clientId, code } },
    );
    this.state.lastError = refusal;
    this.log.error({ code }, refusal.message);
    if (!retryable) this.state.failWaiters(refusal);
  }

  private async subscribeOn(client: mqtt5.Mqtt5Client, filters: readonly string[], qos: Qos): Promise<number[]> {
    try {
      const sdkQos = qosOf(this.loaded(), qos);
      const suback = await client.subscribe({
        subscriptions: filters.map((topicFilter) => ({ topicFilter, qos: sdkQos })),
      });
      return suback.reasonCodes;
    } catch (error) {
      throw this.operationError(error, `subscribe to ${filters.join(', ')}`);
    }
  }

  /** CRT operation failures: lost or absent connection (retryable, callers spool) or client-side validation. */
  private operationError(error: unknown, operation: string): OutpostError {
    const name = (error as { error_name?: unknown }).error_name;
    const offline =
      !this.state.connected || (typeof name === 'string' && /OFFLINE|DISCONNECT|CONNECTION|SHUTDOWN/.test(name));
    if (offline) {
      return new OutpostError('TRANSPORT_OFFLINE', `cannot ${operation}: connection lost (${messageOf(error)})`, {
        cause: error,
      });
    }
    return new OutpostError(
      operation.startsWith('subscribe') ? 'TRANSPORT_SUBSCRIBE_REJECTED' : 'TRANSPORT_PUBLISH_REJECTED',
      `cannot ${operation}: ${messageOf(error)}`,
      { cause: error, details: { crtError: name } },
    );
  }
}

function qosOf(sdk: Sdk, qos: Qos): mqtt5.QoS {
  return qos === 1 ? sdk.mqtt5.QoS.AtLeastOnce : sdk.mqtt5.QoS.AtMostOnce;
}

/** Request/response properties as the CRT's PublishPacket fields [MQTT 5.0 §3.3.2.3]. */
function crtProperties(p: MessageProperties): Partial<mqtt5.PublishPacket> {
  return {
    ...(p.responseTopic === undefined ? {} : { responseTopic: p.responseTopic }),
    ...(p.correlationData === undefined ? {} : { correlationData: p.correlationData }),
    ...(p.contentType === undefined ? {} : { contentType: p.contentType }),
    ...(p.userProperties === undefined
      ? {}
      : { userProperties: Object.entries(p.userProperties).map(([name, value]) => ({ name, value })) }),
  };
}

function receivedProperties(message: mqtt5.PublishPacket): MessageProperties | undefined {
  const user: Record<string, string> = {};
  for (const { name, value } of message.userProperties ?? []) user[name] ??= value;
  const properties: MessageProperties = {
    ...(message.responseTopic === undefined ? {} : { responseTopic: message.responseTopic }),
    ...(message.correlationData === undefined ? {} : { correlationData: payloadBuffer(message.correlationData) }),
    ...(message.contentType === undefined ? {} : { contentType: message.contentType }),
    ...(Object.keys(user).length === 0 ? {} : { userProperties: user }),
  };
  return Object.keys(properties).length === 0 ? undefined : properties;
}
