import { describe, expect, it } from 'vitest';
import { BlockWindow, type BlockWindowLimits } from '../../device-agent/block-window.js';

const LIMITS: BlockWindowLimits = Object.freeze({
  maxInFlight: 4,
  perRequest: 3,
  requestTimeoutMs: 1_000, // ms
  maxStalls: 2,
  maxBadArrivals: 3,
});

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}

describe('BlockWindow', () => {
  it('asks for missing blocks lowest first, in batches of perRequest, up to the in-flight cap', () => {
    const window = new BlockWindow([9, 2, 7, 0, 5, 3], LIMITS);
    expect(window.nextRequests(0)).toEqual([[0, 2, 7], [9]]);
    expect(window.inFlightCount).toBe(4);
    expect(window.nextRequests(0)).toEqual([]); // no room
    window.accepted(2);
    expect(window.nextRequests(10)).toEqual([[5]]);
    expect(window.remaining).toBe(5);
  });

  it('is done when every block was accepted, and a duplicate is not wanted', () => {
    const window = new BlockWindow(range(2), LIMITS);
    window.nextRequests(0);
    window.accepted(0);
    expect(window.wants(0)).toBe(false);
    expect(window.done).toBe(false);
    window.accepted(1);
    expect(window.done).toBe(true);
    expect(window.nextDeadline()).toBeUndefined();
  });

  it('asks again for a block that failed its hash, and gives up after maxBadArrivals', () => {
    const window = new BlockWindow(range(1), LIMITS);
    expect(window.nextRequests(0)).toEqual([[0]]);
    expect(window.rejected(0)).toBe('ask-again');
    expect(window.wants(0)).toBe(true);
    expect(window.nextRequests(1)).toEqual([[0]]);
    expect(window.rejected(0)).toBe('ask-again');
    expect(window.rejected(0)).toBe('give-up');
    expect(window.badArrivals(0)).toBe(3);
  });

  it('puts timed-out blocks back and says when the first request is due', () => {
    const window = new BlockWindow(range(6), LIMITS);
    window.nextRequests(0); // 0..3
    window.accepted(0);
    window.nextRequests(400); // 4
    expect(window.nextDeadline()).toBe(1_000);
    expect(window.expire(999, true)).toBe(false);
    expect(window.inFlightCount).toBe(4);
    expect(window.expire(1_000, true)).toBe(false); // 1..3 back: the first stall
    expect(window.inFlightCount).toBe(1);
    expect(window.nextDeadline()).toBe(1_400);
    expect(window.nextRequests(1_000)).toEqual([[1, 2, 3]]);
  });

  it('counts a stall once per timeout, not once per request of the same round', () => {
    const window = new BlockWindow(range(8), LIMITS);
    window.nextRequests(0); // 0..3
    window.accepted(0);
    window.nextRequests(10); // 4
    window.accepted(1);
    window.nextRequests(20); // 5
    // Requests sent at 0, 10 and 20 time out at 1000, 1010 and 1020 with nothing accepted since: one stall.
    expect(window.expire(1_000, true)).toBe(false);
    window.nextRequests(1_000);
    expect(window.expire(1_010, true)).toBe(false);
    expect(window.expire(1_020, true)).toBe(false);
    // Asked again at 1000: their timeout is the second stall, the next one is one too many.
    expect(window.expire(2_000, true)).toBe(false);
    window.nextRequests(2_000);
    expect(window.expire(3_000, true)).toBe(true);
  });

  it('gives up after more than maxStalls timeouts in a row, and an accepted block starts the count again', () => {
    const window = new BlockWindow(range(4), LIMITS);
    let now = 0;
    const round = () => {
      window.nextRequests(now);
      now += LIMITS.requestTimeoutMs;
      return window.expire(now, true);
    };
    expect(round()).toBe(false);
    expect(round()).toBe(false);
    window.accepted(3);
    expect(round()).toBe(false);
    expect(round()).toBe(false);
    expect(round()).toBe(true);
  });

  it('does not count timeouts while offline', () => {
    const window = new BlockWindow(range(1), LIMITS);
    for (let i = 0; i < 10; i++) {
      window.nextRequests(i * 1_000);
      expect(window.expire((i + 1) * 1_000, false)).toBe(false);
    }
    expect(window.wants(0)).toBe(true);
  });

  it('wants an unsent batch again, due one timeout later at the latest', () => {
    const window = new BlockWindow(range(5), LIMITS);
    const [first, second] = window.nextRequests(0);
    expect(second).toEqual([3]);
    window.unsent(second ?? [], 50);
    expect(window.inFlightCount).toBe(3);
    expect(window.nextDeadline()).toBe(1_000);
    window.unsent(first ?? [], 50);
    expect(window.nextDeadline()).toBe(1_050);
    expect(window.nextRequests(60)).toEqual([[0, 1, 2], [3]]); // the cap: 4 in flight
    expect(window.nextDeadline()).toBe(1_060);
  });
});
