import { OutpostError, messageOf } from '../../runtime/errors.js';
import type { Logger } from '../../runtime/log.js';
import { Subscriptions } from './subscriptions.js';
import type { IncomingMessage } from './types.js';

export const DEFAULT_CONNECT_TIMEOUT_MS = 10_000; // milliseconds, first connect() before it rejects
export const DEFAULT_KEEPALIVE_SECONDS = 60; // seconds, MQTT keep alive [MQTT 5.0 §3.1.2.10]
export const DEFAULT_SESSION_EXPIRY_SECONDS = 3600; // seconds, how long the broker keeps an offline session
export const CLOSE_TIMEOUT_MS = 2_000; // milliseconds, graceful DISCONNECT before the socket is destroyed

interface Waiter {
  readonly resolve: () => void;
  readonly reject: (error: OutpostError) => void;
}

/**
 * What both transports keep regardless of the library underneath: whether we are connected, who listens, which
 * filters to restore when the broker lost the session, and the callers waiting in connect().
 */
export class TransportState {
  connected = false;
  closed = false;
  /** Everything the broker last refused or failed with, for connect()'s rejection message. */
  lastError: unknown;
  readonly subscriptions = new Subscriptions();
  private everConnected = false;
  private readonly messageHandlers = new Set<(message: IncomingMessage) => void>();
  private readonly connectionHandlers = new Set<(connected: boolean) => void>();
  private readonly waiters = new Set<Waiter>();

  constructor(
    private readonly log: Logger,
    private readonly url: string,
  ) {}

  onMessage(handler: (message: IncomingMessage) => void): () => void {
    this.messageHandlers.add(handler);
    return () => this.messageHandlers.delete(handler);
  }

  onConnectionChange(handler: (connected: boolean) => void): () => void {
    this.connectionHandlers.add(handler);
    return () => this.connectionHandlers.delete(handler);
  }

  deliver(message: IncomingMessage): void {
    for (const handler of this.messageHandlers) {
      try {
        handler(message);
      } catch (error) {
        this.log.error({ err: error, topic: message.topic }, 'message handler threw');
      }
    }
  }

  /** Records a connection change and tells listeners; the first connection also settles connect(). */
  setConnected(connected: boolean): void {
    if (connected === this.connected) return;
    this.connected = connected;
    if (connected) {
      this.everConnected = true;
      for (const waiter of this.waiters) waiter.resolve();
      this.waiters.clear();
    }
    for (const handler of this.connectionHandlers) {
      try {
        handler(connected);
      } catch (error) {
        this.log.error({ err: error }, 'connection handler threw');
      }
    }
  }

  /** Whether this transport was connected before (a reconnect), as opposed to its first connection. */
  get reconnecting(): boolean {
    return this.everConnected;
  }

  /** Resolves on the next connection; rejects after timeoutMs naming the URL and the last failure. */
  waitForConnection(timeoutMs: number): Promise<void> {
    if (this.closed) return Promise.reject(this.closedError('connect'));
    if (this.connected) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(waiter);
        const why = this.lastError === undefined ? 'no answer' : messageOf(this.lastError);
        reject(
          new OutpostError(
            'TRANSPORT_CONNECT_FAILED',
            `could not connect to ${this.url} within ${timeoutMs} ms (${why}); still retrying in the background`,
            { cause: this.lastError, details: { url: this.url, timeoutMs } },
          ),
        );
      }, timeoutMs);
      const waiter: Waiter = {
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      };
      this.waiters.add(waiter);
    });
  }

  /** Settles every connect() waiting with this error (a refusal that retrying will not fix, or close()). */
  failWaiters(error: OutpostError): void {
    for (const waiter of this.waiters) waiter.reject(error);
    this.waiters.clear();
  }

  /** Throws unless an operation can go to the broker now: callers spool what we refuse [types.ts: publish]. */
  assertOnline(operation: string): void {
    if (this.closed) throw this.closedError(operation);
    if (!this.connected) {
      throw new OutpostError('TRANSPORT_OFFLINE', `cannot ${operation}: not connected to ${this.url}`, {
        details: { url: this.url, operation },
      });
    }
  }

  closedError(operation: string): OutpostError {
    return new OutpostError('TRANSPORT_CLOSED', `cannot ${operation}: the transport to ${this.url} was closed`, {
      details: { url: this.url, operation },
    });
  }

  close(): void {
    this.closed = true;
    this.failWaiters(this.closedError('connect'));
    this.setConnected(false);
  }
}

/** A broker URL the transport can use, or CONFIG_INVALID naming the schemes it accepts. */
export function parseBrokerUrl(url: string, accepted: readonly string[], example: string): URL {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch (error) {
    throw new OutpostError('CONFIG_INVALID', `broker URL "${url}" is not a URL (e.g. ${example})`, { cause: error });
  }
  if (!accepted.includes(parsed.protocol)) {
    throw new OutpostError(
      'CONFIG_INVALID',
      `broker URL "${redactUrl(url)}" uses ${parsed.protocol}; this transport accepts ${accepted.join(', ')}`,
      { details: { url: redactUrl(url), accepted } },
    );
  }
  return parsed;
}

/** The URL with any password removed, for logs and error messages. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password !== '') parsed.password = '***';
    return parsed.toString().replace(/\/$/, '');
  } catch {
    return url;
  }
}

export function toBuffer(payload: string | Uint8Array): Buffer {
  if (typeof payload === 'string') return Buffer.from(payload, 'utf8');
  return Buffer.isBuffer(payload) ? payload : Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
}
