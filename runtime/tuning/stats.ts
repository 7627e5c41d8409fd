/** Latency statistics over samples in milliseconds. */
export interface LatencyStats {
  readonly count: number;
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly mean: number;
  readonly min: number;
  readonly max: number;
}

/** Nearest-rank percentile of an ascending array. */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank] ?? NaN;
}

export function latencyStats(samples: ArrayLike<number>): LatencyStats {
  const sorted = Float64Array.from(samples).sort();
  let sum = 0;
  for (const s of sorted) sum += s;
  return {
    count: sorted.length,
    p50: percentile(sorted, 50),
    p90: percentile(sorted, 90),
    p99: percentile(sorted, 99),
    mean: sorted.length > 0 ? sum / sorted.length : NaN,
    min: sorted[0] ?? NaN,
    max: sorted[sorted.length - 1] ?? NaN,
  };
}

export interface MeasureOptions {
  readonly warmup: number;
  readonly iterations: number;
  /** Calls in flight at once; latency is per call, throughput over the wall time. */
  readonly concurrency: number;
  readonly onProgress?: (done: number, total: number) => void;
}

export interface Measurement {
  readonly samples: Float64Array;
  readonly wallMs: number;
}

/** Times `iterations` calls of `fn` after `warmup` untimed ones, `concurrency` at a time. */
export async function measure(fn: () => Promise<unknown>, options: MeasureOptions): Promise<Measurement> {
  for (let i = 0; i < options.warmup; i++) await fn();
  const samples = new Float64Array(options.iterations);
  let next = 0;
  let done = 0;
  const worker = async (): Promise<void> => {
    while (next < options.iterations) {
      const index = next++;
      const start = performance.now();
      await fn();
      samples[index] = performance.now() - start;
      options.onProgress?.(++done, options.iterations);
    }
  };
  const started = performance.now();
  await Promise.all(Array.from({ length: Math.max(1, options.concurrency) }, worker));
  return { samples, wallMs: performance.now() - started };
}
