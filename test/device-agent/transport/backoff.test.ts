import { describe, expect, it } from 'vitest';
import { Backoff, backoffDelay } from '../../../device-agent/transport/backoff.js';
import { DEFAULT_RECONNECT } from '../../../device-agent/transport/types.js';

const POLICY = Object.freeze({ minMs: 100, maxMs: 1_000, jitter: 0.5, resetAfterMs: 10 });

describe('reconnect backoff', () => {
  it('doubles from minMs up to maxMs when there is no jitter', () => {
    const delays = [0, 1, 2, 3, 4, 5].map((n) => backoffDelay({ ...POLICY, jitter: 0 }, n));
    expect(delays).toEqual([100, 200, 400, 800, 1_000, 1_000]);
  });

  it('spreads each delay by ±jitter and never beyond [0, maxMs]', () => {
    expect(backoffDelay(POLICY, 1, () => 0)).toBe(100); // 200 − 50 %
    expect(backoffDelay(POLICY, 1, () => 1)).toBe(300); // 200 + 50 %
    expect(backoffDelay(POLICY, 10, () => 1)).toBe(1_000);
    const spread = new Set(Array.from({ length: 50 }, () => backoffDelay(DEFAULT_RECONNECT, 3)));
    expect(spread.size).toBeGreaterThan(10); // a fleet does not reconnect in lockstep
  });

  it('starts again from minMs only after a connection lasted resetAfterMs', async () => {
    const backoff = new Backoff({ ...POLICY, jitter: 0 });
    expect([backoff.next(), backoff.next(), backoff.next()]).toEqual([100, 200, 400]);
    backoff.connected();
    backoff.cancel(); // a flapping connection: dropped before it was stable
    expect(backoff.next()).toBe(800);
    backoff.connected();
    await new Promise((resolve) => setTimeout(resolve, POLICY.resetAfterMs + 20));
    expect(backoff.next()).toBe(100);
  });
});
