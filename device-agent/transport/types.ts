import type { BackoffPolicy } from '../../runtime/retry.js';

/**
 * One MQTT connection, whatever library carries it. The agent speaks AWS IoT's MQTT protocols through this and
 * nothing else, so the same agent runs against AWS IoT Core (aws-iot-device-sdk-v2) and any broker (MQTT.js).
 */
export type Qos = 0 | 1;

export interface TlsFiles {
  /** PEM text or file paths. */
  readonly ca?: string;
  readonly cert?: string;
  readonly key?: string;
  /** Verify the broker's certificate (default true); tests against self-signed brokers pass a CA instead. */
  readonly rejectUnauthorized?: boolean;
}

export interface WillMessage {
  readonly topic: string;
  readonly payload: string;
  readonly qos: Qos;
  readonly retain: boolean;
}

/** First retry delay `minMs`; doubles per failure up to `maxMs`, each delay jittered by ±`jitter` (fraction). */
export interface ReconnectPolicy extends BackoffPolicy {
  /** A connection that stays up this long resets the delay to minMs; shorter ones keep backing off (flapping). */
  readonly resetAfterMs?: number; // milliseconds, default 30 s (the AWS CRT's default)
}

export const DEFAULT_RECONNECT: ReconnectPolicy = Object.freeze({
  minMs: 500,
  maxMs: 30_000,
  jitter: 0.3,
  resetAfterMs: 30_000,
});

export interface TransportOptions {
  /** mqtt://, mqtts://, ws://, wss:// (MQTT.js); for AWS IoT Core, mqtts://<endpoint>:8883 with certificates. */
  readonly url: string;
  /** The thing name, as AWS IoT requires for the `$aws/things/{thing}/…` policy variables. */
  readonly clientId: string;
  readonly tls?: TlsFiles;
  readonly username?: string;
  readonly password?: string;
  /**
   * Persistent session (clean start off): subscriptions and QoS 1 messages survive reconnects. MQTT.js resumes the
   * broker's session from the first connect; aws-iot-device-sdk-v2 (RejoinPostSuccess) starts clean once per process
   * and rejoins on every reconnect after that.
   */
  readonly persistentSession?: boolean; // default true
  /** Seconds the broker keeps the session after a disconnect (MQTT 5 session expiry). */
  readonly sessionExpirySeconds?: number;
  readonly keepaliveSeconds?: number;
  readonly will?: WillMessage;
  readonly reconnect?: ReconnectPolicy;
  /** Give up the first connect after this long (the transport keeps retrying in the background). */
  readonly connectTimeoutMs?: number;
}

/**
 * The MQTT 5 PUBLISH properties request/response needs [MQTT 5.0 §4.10]: absent on MQTT 3.1.1 connections, where a
 * publish carries none and a message arrives without them.
 */
export interface MessageProperties {
  /** [MQTT 5.0 §3.3.2.3.5] Response Topic: where the receiver should publish its answer. */
  readonly responseTopic?: string;
  /** [MQTT 5.0 §3.3.2.3.6] Correlation Data: opaque bytes the answer carries back unchanged. */
  readonly correlationData?: Buffer;
  /** [MQTT 5.0 §3.3.2.3.9] Content Type (a MIME type). */
  readonly contentType?: string;
  /** [MQTT 5.0 §3.3.2.3.7] User Properties (the first value of a repeated name). */
  readonly userProperties?: Readonly<Record<string, string>>;
}

export interface IncomingMessage {
  readonly topic: string;
  readonly payload: Buffer;
  readonly properties?: MessageProperties;
}

export interface PublishOptions {
  readonly qos?: Qos;
  readonly retain?: boolean;
  /** Sent on MQTT 5 connections; dropped on MQTT 3.1.1, which has no properties. */
  readonly properties?: MessageProperties;
}

export interface Transport {
  readonly name: 'mqtt.js' | 'aws-iot-device-sdk-v2';
  readonly connected: boolean;
  /**
   * Starts connecting and keeps reconnecting with jittered backoff until close(). Resolves on the first successful
   * connection, or rejects after `connectTimeoutMs` (default 10 s) — while still retrying in the background, so an
   * agent that starts offline comes online by itself. A refusal only an operator can fix (bad credentials, not
   * authorized, client id rejected) rejects at once with TRANSPORT_REFUSED; the retries go on regardless.
   */
  connect(): Promise<void>;
  /** QoS 1 resolves when the broker acknowledged (PUBACK); rejects when offline (callers spool). */
  publish(topic: string, payload: string | Uint8Array, options?: PublishOptions): Promise<void>;
  /** The MQTT version of the current connection (5, or 4 for 3.1.1): whether properties travel. */
  readonly protocolVersion: 4 | 5;
  /** Subscriptions are re-established after reconnects. */
  subscribe(filters: readonly string[], qos?: Qos): Promise<void>;
  unsubscribe(filters: readonly string[]): Promise<void>;
  onMessage(handler: (message: IncomingMessage) => void): () => void;
  /** Called with true on every (re)connect and false on every loss of connection. */
  onConnectionChange(handler: (connected: boolean) => void): () => void;
  close(): Promise<void>;
}
