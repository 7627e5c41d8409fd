/**
 * The block bookkeeping of one stream-file fetch, with no I/O and no clock of its own (every method that needs the
 * time is given `now`): which blocks are still missing, which are in flight and since when, which failed their hash
 * how often, what to ask for next, and when the fetch has stalled. `StreamFetcher` drives it from broker events.
 *
 *   missing ──nextRequests──▶ in flight ──accepted──▶ done
 *      ▲                        │  │
 *      └──── expire / unsent ───┘  └──rejected (hash)──▶ missing again (until maxBadArrivals)
 */
export interface BlockWindowLimits {
  /** Blocks in flight at once across requests: bounds memory to this many blocks. */
  readonly maxInFlight: number;
  /** Blocks a single GetStream may ask for (its bitmap's reach). */
  readonly perRequest: number;
  /** A block not arrived this long after it was asked for is asked for again. */
  readonly requestTimeoutMs: number; // ms
  /** Request timeouts in a row with no block accepted before the fetch gives up. */
  readonly maxStalls: number;
  /** Arrivals of one block that failed their hash before the fetch gives up on the source. */
  readonly maxBadArrivals: number;
}

/** What a block that failed its hash means: ask for it again, or the source is broken. */
export type BadArrival = 'ask-again' | 'give-up';

export class BlockWindow {
  private readonly missing: Set<number>;
  private readonly inFlight = new Map<number, number>(); // block → when it was asked for (ms)
  private readonly bad = new Map<number, number>(); // block → arrivals that failed their hash
  private stalls = 0;
  /** When the last stall was counted (ms): timeouts of requests sent before it are the same stall. */
  private lastStallAt = Number.NEGATIVE_INFINITY;
  /** A request that could not be sent is tried again at the latest then (ms), or at once on an event. */
  private retryAt: number | undefined;

  constructor(
    missing: Iterable<number>,
    private readonly limits: BlockWindowLimits,
  ) {
    this.missing = new Set(missing);
  }

  /** Every block arrived and was accepted. */
  get done(): boolean {
    return this.missing.size === 0;
  }

  get remaining(): number {
    return this.missing.size;
  }

  get inFlightCount(): number {
    return this.inFlight.size;
  }

  /** Whether an arriving block is still needed (false for a duplicate or a block never asked for). */
  wants(block: number): boolean {
    return this.missing.has(block);
  }

  /** Arrival failures of a block so far (its hash did not match). */
  badArrivals(block: number): number {
    return this.bad.get(block) ?? 0;
  }

  /** A block arrived and was verified and stored: it is no longer missing, and the fetch is making progress. */
  accepted(block: number): void {
    this.missing.delete(block);
    this.inFlight.delete(block);
    this.stalls = 0;
  }

  /** A block arrived that failed its hash: asked for again, unless it has failed `maxBadArrivals` times. */
  rejected(block: number): BadArrival {
    const failures = this.badArrivals(block) + 1;
    this.bad.set(block, failures);
    this.inFlight.delete(block);
    return failures >= this.limits.maxBadArrivals ? 'give-up' : 'ask-again';
  }

  /**
   * The next GetStream batches: missing blocks not in flight, lowest first, up to the in-flight cap, at most
   * `perRequest` a batch. They count as in flight from `now`.
   */
  nextRequests(now: number): number[][] {
    this.retryAt = undefined;
    const room = this.limits.maxInFlight - this.inFlight.size;
    if (room <= 0) return [];
    const wanted: number[] = [];
    for (const block of this.missing) {
      if (this.inFlight.has(block)) continue;
      wanted.push(block);
      if (wanted.length >= room) break;
    }
    wanted.sort((a, b) => a - b);
    const batches: number[][] = [];
    for (let i = 0; i < wanted.length; i += this.limits.perRequest) {
      const batch = wanted.slice(i, i + this.limits.perRequest);
      for (const block of batch) this.inFlight.set(block, now);
      batches.push(batch);
    }
    return batches;
  }

  /** A batch that could not be sent (the connection): wanted again, on the next event or one timeout from `now`. */
  unsent(batch: readonly number[], now: number): void {
    for (const block of batch) this.inFlight.delete(block);
    this.retryAt = Math.min(this.retryAt ?? Number.POSITIVE_INFINITY, now + this.limits.requestTimeoutMs);
  }

  /**
   * Blocks asked for at least `requestTimeoutMs` before `now` go back to the wanted set. With `counting` (the
   * transport is connected: offline time does not count), a timeout of a request sent since the last stall is a
   * new stall. Returns true when there have been more than `maxStalls` stalls with no block accepted between them.
   */
  expire(now: number, counting: boolean): boolean {
    let stalled = false;
    for (const [block, askedAt] of this.inFlight) {
      if (askedAt + this.limits.requestTimeoutMs > now) continue;
      this.inFlight.delete(block);
      if (askedAt >= this.lastStallAt) stalled = true;
    }
    if (!stalled || !counting) return false;
    this.lastStallAt = now;
    return ++this.stalls > this.limits.maxStalls;
  }

  /** When something is due without an event (ms): the first request timeout, or the retry of an unsent request. */
  nextDeadline(): number | undefined {
    let first = this.retryAt;
    for (const askedAt of this.inFlight.values()) {
      const deadline = askedAt + this.limits.requestTimeoutMs;
      if (first === undefined || deadline < first) first = deadline;
    }
    return first;
  }
}
