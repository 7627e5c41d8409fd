/**
 * The statistics a baseline holds per feature and the two drift measures computed against it. One implementation
 * for the compiler (which summarises the calibration set) and the device (which bins live values into the
 * baseline's bins), so both sides agree on what a bin is.
 */

/**
 * Histogram bins per feature: edges at the baseline's deciles, so each bin holds ~10 % of it (the usual PSI binning;
 * more bins raise the score's noise floor, ≈ (bins − 1)·(1/n_live + 1/n_baseline), over what a device window holds).
 */
export const HISTOGRAM_BINS = 10;
/** Probability floor for empty bins in PSI (ln 0 is undefined); the usual 1e-4 of credit-scoring practice. */
export const PSI_EPSILON = 1e-4;
export const QUANTILES = Object.freeze([0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99]);

export interface FeatureStatistics {
  readonly count: number;
  readonly mean: number;
  readonly std: number;
  readonly min: number;
  readonly max: number;
  /** QUANTILES → value, keyed "p01", "p05", …, "p99". */
  readonly quantiles: Record<string, number>;
  /**
   * `edges` are the interior bin boundaries, ascending and distinct; bin i holds values in [edges[i-1], edges[i]),
   * the first bin everything below edges[0] and the last everything from the last edge up. `counts` has
   * edges.length + 1 entries.
   */
  readonly histogram: { edges: number[]; counts: number[] };
}

/** Summarises a sample of one feature's values (the array is sorted in place). */
export function summarize(values: Float64Array, bins = HISTOGRAM_BINS): FeatureStatistics {
  values.sort();
  const n = values.length;
  let sum = 0;
  for (const v of values) sum += v;
  const mean = n === 0 ? 0 : sum / n;
  let squares = 0;
  for (const v of values) squares += (v - mean) * (v - mean);
  const quantile = (q: number) => (n === 0 ? 0 : (values[Math.min(n - 1, Math.floor(q * n))] ?? 0));
  const edges: number[] = [];
  for (let b = 1; b < bins; b++) {
    const edge = quantile(b / bins);
    if (edges.length === 0 || edge > (edges[edges.length - 1] ?? -Infinity)) edges.push(edge);
  }
  // A constant feature has one value: give it a bin of its own, so anything else lands beside it.
  if (edges.length === 0 && n > 0) edges.push(values[0] ?? 0);
  const counts = new Array<number>(edges.length + 1).fill(0);
  for (const v of values) {
    const bin = binOf(edges, v);
    counts[bin] = (counts[bin] ?? 0) + 1;
  }
  return {
    count: n,
    mean,
    std: n === 0 ? 0 : Math.sqrt(squares / n),
    min: n === 0 ? 0 : (values[0] ?? 0),
    max: n === 0 ? 0 : (values[n - 1] ?? 0),
    quantiles: Object.fromEntries(QUANTILES.map((q) => [quantileKey(q), quantile(q)])),
    histogram: { edges, counts },
  };
}

export function quantileKey(q: number): string {
  return `p${String(Math.round(q * 100)).padStart(2, '0')}`;
}

/** The bin of `value` for these edges (binary search: the hot path bins every sampled value). */
export function binOf(edges: readonly number[], value: number): number {
  let lo = 0;
  let hi = edges.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (value < (edges[mid] as number)) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

/**
 * Population stability index, Σ (a − e)·ln(a / e) over bins of the live (a) and baseline (e) proportions, empty
 * bins floored at PSI_EPSILON. Rule of thumb: < 0.1 stable, 0.1–0.25 moderate, > 0.25 a significant shift.
 */
export function populationStabilityIndex(expected: ArrayLike<number>, actual: ArrayLike<number>): number {
  const e = proportions(expected);
  const a = proportions(actual);
  let psi = 0;
  for (let i = 0; i < e.length; i++) {
    const pe = Math.max(PSI_EPSILON, e[i] ?? 0);
    const pa = Math.max(PSI_EPSILON, a[i] ?? 0);
    psi += (pa - pe) * Math.log(pa / pe);
  }
  return psi;
}

/**
 * The two-sample Kolmogorov–Smirnov statistic, max |F_live − F_baseline|, evaluated at the bin edges: with bins at
 * the baseline's deciles it resolves a difference of distribution functions to within one bin's mass.
 */
export function kolmogorovSmirnov(expected: ArrayLike<number>, actual: ArrayLike<number>): number {
  const e = proportions(expected);
  const a = proportions(actual);
  let ce = 0;
  let ca = 0;
  let d = 0;
  for (let i = 0; i < e.length; i++) {
    ce += e[i] ?? 0;
    ca += a[i] ?? 0;
    d = Math.max(d, Math.abs(ce - ca));
  }
  return d;
}

function proportions(counts: ArrayLike<number>): number[] {
  let total = 0;
  for (let i = 0; i < counts.length; i++) total += counts[i] ?? 0;
  const out = new Array<number>(counts.length);
  for (let i = 0; i < counts.length; i++) out[i] = total === 0 ? 0 : (counts[i] ?? 0) / total;
  return out;
}
