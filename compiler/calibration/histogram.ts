import { OutpostError } from '../../runtime/errors.js';

/**
 * A streaming histogram of |x| with a fixed number of bins over [0, bins × width). When a batch holds a value past
 * the top edge, the width doubles and neighbouring bins merge pairwise, exactly (each new bin is the sum of two old
 * ones), until it fits. So memory stays at `bins` counters however many values arrive; ORT's HistogramCalibrater
 * instead appends bins of the first width (calibrate.py, `collect_absolute_value`), which grows without bound on a
 * heavy tail. Non-finite values are counted apart and never binned.
 */
export const DEFAULT_BINS = 2048; // TensorRT's and ORT's entropy/percentile histogram size

export class AbsHistogram {
  readonly counts: Float64Array;
  /** Bin width; 0 until a non-zero value has been seen (zeros wait in `zeros`). */
  private binWidth = 0;
  private zeros = 0;
  private lowest = Infinity;
  private highest = -Infinity;
  private nonFinite = 0;

  constructor(readonly bins = DEFAULT_BINS) {
    if (!Number.isInteger(bins) || bins < 2 || bins % 2 !== 0) {
      throw new OutpostError('INVALID_ARGUMENT', `a histogram needs an even number of bins (≥ 2), got ${bins}`);
    }
    this.counts = new Float64Array(bins);
  }

  get width(): number {
    return this.binWidth;
  }

  /** Smallest and largest finite value seen (signed), or undefined before any. */
  get min(): number | undefined {
    return this.lowest === Infinity ? undefined : this.lowest;
  }

  get max(): number | undefined {
    return this.highest === -Infinity ? undefined : this.highest;
  }

  get skipped(): number {
    return this.nonFinite;
  }

  /** Values binned so far (zeros included). */
  get total(): number {
    let sum = this.zeros;
    for (const c of this.counts) sum += c;
    return sum;
  }

  add(values: Float32Array): void {
    let lo = this.lowest;
    let hi = this.highest;
    let absMax = 0;
    for (const v of values) {
      if (!Number.isFinite(v)) continue;
      if (v < lo) lo = v;
      if (v > hi) hi = v;
      const a = v < 0 ? -v : v;
      if (a > absMax) absMax = a;
    }
    this.lowest = lo;
    this.highest = hi;
    if (absMax > 0) this.fit(absMax);
    const { counts, bins } = this;
    const width = this.binWidth;
    for (const v of values) {
      if (!Number.isFinite(v)) {
        this.nonFinite += 1;
      } else if (v === 0 || width === 0) {
        this.zeros += 1;
      } else {
        const index = Math.min(Math.floor((v < 0 ? -v : v) / width), bins - 1);
        counts[index] = (counts[index] as number) + 1;
      }
    }
    if (width > 0 && this.zeros > 0) {
      counts[0] = (counts[0] as number) + this.zeros;
      this.zeros = 0;
    }
  }

  /** Upper edge of bin i. */
  edge(i: number): number {
    return (i + 1) * this.binWidth;
  }

  private fit(absMax: number): void {
    if (this.binWidth === 0) {
      this.binWidth = absMax / this.bins;
      return;
    }
    while (absMax > this.binWidth * this.bins) {
      const { counts } = this;
      const half = this.bins / 2;
      for (let i = 0; i < half; i++) counts[i] = (counts[2 * i] as number) + (counts[2 * i + 1] as number);
      counts.fill(0, half);
      this.binWidth *= 2;
    }
  }
}
