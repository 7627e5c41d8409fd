import { DEFAULT_RECONNECT, type ReconnectPolicy } from './types.js';

/**
 * Exponential backoff with jitter for reconnects: minMs, 2·minMs, 4·minMs … capped at maxMs, each delay spread by
 * ±jitter so a fleet that lost its broker at the same instant does not come back at the same instant (AWS
 * Architecture Blog, "Exponential Backoff And Jitter"; AWS IoT Core's connection rate limits per account).
 */
export function backoffDelay(policy: ReconnectPolicy, failures: number, random: () => number = Math.random): number {
  const base = Math.min(policy.maxMs, policy.minMs * 2 ** Math.min(failures, 30));
  const spread = base * policy.jitter * (2 * random() - 1);
  return Math.round(Math.min(policy.maxMs, Math.max(0, base + spread)));
}

/** Which reconnect attempt this is, and when a connection has been up long enough to start again from minMs. */
export class Backoff {
  private failures = 0;
  private stableTimer: NodeJS.Timeout | undefined;

  constructor(
    readonly policy: ReconnectPolicy = DEFAULT_RECONNECT,
    private readonly random: () => number = Math.random,
  ) {}

  /** The delay before the next attempt; each call counts one more failure. */
  next(): number {
    const delay = backoffDelay(this.policy, this.failures, this.random);
    this.failures++;
    return delay;
  }

  /** A connection came up: once it has lasted `resetAfterMs`, the next loss retries after minMs again. */
  connected(): void {
    this.cancel();
    const after = this.policy.resetAfterMs ?? DEFAULT_RECONNECT.resetAfterMs ?? 0;
    this.stableTimer = setTimeout(() => {
      this.failures = 0;
    }, after);
    this.stableTimer.unref();
  }

  /** The connection went away (or the transport closed): a short-lived connection keeps the backoff where it is. */
  cancel(): void {
    if (this.stableTimer !== undefined) clearTimeout(this.stableTimer);
    this.stableTimer = undefined;
  }
}
