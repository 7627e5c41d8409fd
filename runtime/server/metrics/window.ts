/** Counts over the recent past for one model version, as guardrails read them (no Prometheus text to parse). */
export interface WindowStats {
  /** Calls that finished in the window, whatever their outcome. */
  readonly requests: number;
  /** Calls that failed through no fault of the request (inference failures, overload, released model). */
  readonly errors: number;
  /** Calls refused because the request itself was wrong (a 400: bad shape, dtype, name). */
  readonly clientErrors: number;
  /** errors / requests; 0 when there were no requests. */
  readonly errorRate: number;
  /** 99th percentile latency of successful calls, never below the true value and at most 10% above; undefined with none. */
  readonly p99Ms: number | undefined;
  /** The median, read the same way. */
  readonly p50Ms?: number | undefined;
}

export interface WindowOptions {
  /** How far back the stats reach. */
  readonly windowMs: number; // ms
  /** Time slices the window is kept in: it slides one slice at a time, so it spans windowMs minus up to one slice. */
  readonly slices: number;
}

export const DEFAULT_WINDOW = Object.freeze({
  windowMs: 60_000, // ms: CloudWatch's one-minute alarm period, what a deployment guardrail watches
  slices: 12, // 5 s each
} satisfies WindowOptions);

/**
 * Latency bins on a log scale (HdrHistogram's idea, coarsened): bin b holds (MIN·GROWTH^(b-1), MIN·GROWTH^b], so a
 * percentile read as its bin's upper edge is at most GROWTH times the true value. Fixed memory, no sampling.
 */
const MIN_MS = 0.01; // ms: below this, differences are timer noise
const MAX_MS = 120_000; // ms: slower calls share the last bin
const GROWTH = 1.1; // each bin 10% wider than the previous one
const LOG_GROWTH = Math.log(GROWTH);
const BINS = Math.ceil(Math.log(MAX_MS / MIN_MS) / LOG_GROWTH) + 1;
const P99 = 0.99;
const P50 = 0.5;

function bin(ms: number): number {
  if (!(ms > MIN_MS)) return 0; // also NaN
  return Math.min(BINS - 1, Math.ceil(Math.log(ms / MIN_MS) / LOG_GROWTH));
}

export type Outcome = 'ok' | 'error' | 'client';

/**
 * A sliding window of request outcomes and latencies kept as a ring of time slices: recording is O(1) and allocates
 * nothing; memory is slices × (3 + BINS) 32-bit counters (about 8 KB with the defaults) however busy the model.
 */
export class SlidingWindow {
  private readonly sliceMs: number;
  private readonly slices: number;
  /** Which slice number (time / sliceMs) each ring slot holds; -Infinity for none. */
  private readonly epochs: Float64Array;
  private readonly requests: Uint32Array;
  private readonly errors: Uint32Array;
  private readonly clientErrors: Uint32Array;
  private readonly latency: Uint32Array;

  constructor(
    options: WindowOptions = DEFAULT_WINDOW,
    private readonly now: () => number = performance.now.bind(performance),
  ) {
    this.slices = Math.max(1, Math.floor(options.slices));
    this.sliceMs = options.windowMs / this.slices;
    this.epochs = new Float64Array(this.slices).fill(-Infinity);
    this.requests = new Uint32Array(this.slices);
    this.errors = new Uint32Array(this.slices);
    this.clientErrors = new Uint32Array(this.slices);
    this.latency = new Uint32Array(this.slices * BINS);
  }

  record(ms: number, outcome: Outcome): void {
    const epoch = Math.floor(this.now() / this.sliceMs);
    const slot = ((epoch % this.slices) + this.slices) % this.slices;
    if (this.epochs[slot] !== epoch) {
      // The slot last held a slice that has left the window: start it afresh.
      this.epochs[slot] = epoch;
      this.requests[slot] = 0;
      this.errors[slot] = 0;
      this.clientErrors[slot] = 0;
      this.latency.fill(0, slot * BINS, (slot + 1) * BINS);
    }
    (this.requests[slot] as number)++;
    if (outcome === 'error') (this.errors[slot] as number)++;
    else if (outcome === 'client') (this.clientErrors[slot] as number)++;
    else (this.latency[slot * BINS + bin(ms)] as number)++;
  }

  stats(): WindowStats {
    const current = Math.floor(this.now() / this.sliceMs);
    let requests = 0;
    let errors = 0;
    let clientErrors = 0;
    const live: number[] = [];
    for (let slot = 0; slot < this.slices; slot++) {
      const epoch = this.epochs[slot] as number;
      if (epoch <= current - this.slices || epoch > current) continue; // empty (-Infinity) or expired
      live.push(slot);
      requests += this.requests[slot] as number;
      errors += this.errors[slot] as number;
      clientErrors += this.clientErrors[slot] as number;
    }
    return {
      requests,
      errors,
      clientErrors,
      errorRate: requests > 0 ? errors / requests : 0,
      p99Ms: this.percentile(live, P99),
      p50Ms: this.percentile(live, P50),
    };
  }

  /** Nearest-rank percentile over the live slots' bins, read as the bin's upper edge. */
  private percentile(live: readonly number[], p: number): number | undefined {
    const counts = new Float64Array(BINS);
    let total = 0;
    for (const slot of live) {
      for (let b = 0; b < BINS; b++) {
        const n = this.latency[slot * BINS + b] as number;
        counts[b] = (counts[b] as number) + n;
        total += n;
      }
    }
    if (total === 0) return undefined;
    const rank = Math.max(1, Math.ceil(p * total));
    let seen = 0;
    for (let b = 0; b < BINS; b++) {
      seen += counts[b] as number;
      if (seen >= rank) return MIN_MS * GROWTH ** b;
    }
    return MAX_MS;
  }

  /** Forgets everything: stats start again from now (a new deployment). */
  reset(): void {
    this.epochs.fill(-Infinity);
    this.requests.fill(0);
    this.errors.fill(0);
    this.clientErrors.fill(0);
    this.latency.fill(0);
  }
}
