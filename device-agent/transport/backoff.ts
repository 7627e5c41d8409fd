import { backoffDelay } from '../../runtime/retry.js';
import { DEFAULT_RECONNECT, type ReconnectPolicy } from './types.js';

/**
 * Reconnect delays come from the one jittered exponential backoff of runtime/retry.ts (`backoffDelay`), which every
 * other retry of the agent and the fleet uses too.
 */
export { backoffDelay };

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
