import { OutpostError } from '../../runtime/errors.js';
import { AbsHistogram, DEFAULT_BINS } from './histogram.js';

/**
 * Calibrators turn the activation values seen on calibration samples into one [min, max] range per tensor, from
 * which static quantisation derives scale and zero point. Each consumes batches incrementally and keeps O(1) state per
 * tensor (a running min/max, or a fixed-size histogram), so memory does not grow with the number of samples.
 *
 * - minmax: the extremes seen (ORT `MinMaxCalibrater`, no moving average). Faithful, but one outlier stretches the
 *   range for everyone.
 * - percentile: the |x| value below which `percentile`% of all values fall, as a symmetric range clipped to the
 *   observed extremes (ORT `HistogramCalibrater` with method Percentile and symmetric=True; default 99.999).
 * - entropy: the |x| threshold whose 8-bit rendering loses least information, i.e. minimises the KL divergence
 *   between the clipped reference histogram and its quantised copy (TensorRT's entropy calibrator, "8-bit Inference
 *   with TensorRT", Migacz 2017; the same search as MXNet's `_get_optimal_threshold` and ORT's
 *   `get_entropy_threshold`) as NVIDIA's pytorch-quantization runs it, over a 2048-bin histogram.
 */
export type CalibrationMethod = 'minmax' | 'percentile' | 'entropy';

export const CALIBRATION_METHODS: readonly CalibrationMethod[] = Object.freeze(['minmax', 'percentile', 'entropy']);

export interface TensorRange {
  readonly min: number;
  readonly max: number;
}

export interface Calibrator {
  readonly method: CalibrationMethod;
  /** Adds one batch of a tensor's values. */
  observe(name: string, values: Float32Array): void;
  /** The range per tensor observed so far (tensors that only ever held non-finite values get [0, 0]). */
  ranges(): Map<string, TensorRange>;
}

export interface CalibratorOptions {
  /** Histogram bins for percentile and entropy. */
  readonly bins?: number; // default 2048
  /** percentile: the share of |x| kept, in percent. */
  readonly percentile?: number; // default 99.999
  /**
   * entropy: quantised levels the threshold is judged at. 'auto' uses 256 for tensors that never go negative (all of
   * an asymmetric 8-bit range covers [0, t]) and 128 otherwise (one sign's half of it).
   */
  readonly levels?: 128 | 256 | 'auto'; // default 'auto'
  /** entropy: candidate thresholds are tried every `stride` bins (pytorch-quantization's `stride`). */
  readonly stride?: number; // bins, default 1
}

export const CALIBRATOR_DEFAULTS = Object.freeze({
  bins: DEFAULT_BINS,
  percentile: 99.999, // %
  levels: 'auto' as const,
  stride: 1, // bins
});

class MinMaxCalibrator implements Calibrator {
  readonly method = 'minmax' as const;
  private readonly state = new Map<string, { min: number; max: number }>();

  observe(name: string, values: Float32Array): void {
    let entry = this.state.get(name);
    if (entry === undefined) {
      entry = { min: Infinity, max: -Infinity };
      this.state.set(name, entry);
    }
    let { min, max } = entry;
    for (const v of values) {
      // NaN compares false both ways; ±Infinity would poison the scale, so only finite extremes count.
      if (v < min && v !== -Infinity) min = v;
      if (v > max && v !== Infinity) max = v;
    }
    entry.min = min;
    entry.max = max;
  }

  ranges(): Map<string, TensorRange> {
    const out = new Map<string, TensorRange>();
    for (const [name, { min, max }] of this.state) out.set(name, min > max ? { min: 0, max: 0 } : { min, max });
    return out;
  }
}

abstract class HistogramCalibrator implements Calibrator {
  abstract readonly method: CalibrationMethod;
  protected readonly histograms = new Map<string, AbsHistogram>();

  constructor(private readonly bins: number) {}

  observe(name: string, values: Float32Array): void {
    let histogram = this.histograms.get(name);
    if (histogram === undefined) {
      histogram = new AbsHistogram(this.bins);
      this.histograms.set(name, histogram);
    }
    histogram.add(values);
  }

  ranges(): Map<string, TensorRange> {
    const out = new Map<string, TensorRange>();
    for (const [name, histogram] of this.histograms) {
      const { min, max } = histogram;
      if (min === undefined || max === undefined) {
        out.set(name, { min: 0, max: 0 });
        continue;
      }
      // A symmetric threshold, clipped to what was actually seen (calibrate.py does the same with min/max). Values
      // all on one side of 0 with the threshold below the nearest of them (entropy on a narrow band far from 0)
      // would give min > max: the range then collapses onto that nearest value, which everything saturates to.
      const t = histogram.width === 0 ? 0 : this.threshold(histogram);
      const lo = Math.max(min, -t);
      const hi = Math.min(max, t);
      const nearest = min > 0 ? min : max;
      out.set(name, lo <= hi ? { min: lo, max: hi } : { min: nearest, max: nearest });
    }
    return out;
  }

  protected abstract threshold(histogram: AbsHistogram): number;
}

class PercentileCalibrator extends HistogramCalibrator {
  readonly method = 'percentile' as const;

  constructor(
    bins: number,
    private readonly percentile: number,
  ) {
    super(bins);
  }

  /** Upper edge of the bin where the cumulative share first reaches the percentile. */
  protected threshold(histogram: AbsHistogram): number {
    const target = (histogram.total * this.percentile) / 100;
    let cumulative = 0;
    for (let i = 0; i < histogram.bins; i++) {
      cumulative += histogram.counts[i] as number;
      if (cumulative >= target) return histogram.edge(i);
    }
    return histogram.edge(histogram.bins - 1);
  }
}

/**
 * The KL search of NVIDIA's pytorch-quantization (`calib/histogram.py`, `_compute_amax_entropy`), TensorRT's
 * calibrator in Python: for each candidate edge i (from `levels` bins up), the reference p is the first i bins with
 * everything beyond folded into the last; the candidate q merges those i bins into `levels` equal groups and spreads
 * each group's mass evenly over its non-empty bins. Bin 0 counts as its neighbour (`bins[0] = bins[1]`), so the
 * spike of exact zeros after a ReLU does not drag the threshold down. Ties go to the largest i.
 */
const SMOOTHING_EPS = 1e-4; // counts
const MAX_CLIPPED_SHARE = 0.01; // of all values

function entropyThreshold(histogram: AbsHistogram, levels: number, stride: number): number {
  const bins = histogram.bins;
  if (bins <= levels) return histogram.edge(bins - 1);
  const counts = Float64Array.from(histogram.counts);
  counts[0] = counts[1] as number;
  let total = 0;
  for (const c of counts) total += c;
  if (total === 0) return histogram.edge(bins - 1);
  const groupMass = new Float64Array(levels);
  const groupFilled = new Float64Array(levels);
  let best = bins;
  let bestKl = Infinity;
  let prefix = 0; // mass of bins [0, i)
  let prefixAt = 0;
  for (let i = levels; i <= bins; i += stride) {
    for (; prefixAt < i; prefixAt++) prefix += counts[prefixAt] as number;
    // A threshold that clips more than a sliver of the values is not clipping outliers. KL alone would take it for a
    // band far from zero, where the clipped reference collapses into one bin and matches its quantised copy exactly.
    if (total - prefix > total * MAX_CLIPPED_SHARE) continue;
    groupMass.fill(0);
    groupFilled.fill(0);
    for (let k = 0; k < i; k++) {
      const c = counts[k] as number;
      if (c === 0) continue;
      const g = Math.floor((k * levels) / i);
      groupMass[g] = (groupMass[g] as number) + c;
      groupFilled[g] = (groupFilled[g] as number) + 1;
    }
    // p sums to `total` (outliers folded into bin i-1); q sums to `prefix`.
    let kl = 0;
    for (let k = 0; k < i; k++) {
      const c = counts[k] as number;
      const pk = k === i - 1 ? c + total - prefix : c;
      if (pk === 0) continue;
      const g = Math.floor((k * levels) / i);
      // Where q is empty but p is not (outliers folded into an empty last bin), q gets MXNet's smoothing epsilon
      // (`_smooth_distribution`, eps = 1e-4 of a count) instead of an infinite divergence.
      const qk = (c === 0 ? SMOOTHING_EPS : (groupMass[g] as number) / (groupFilled[g] as number)) / prefix;
      const pn = pk / total;
      kl += pn * Math.log(pn / qk);
    }
    if (kl <= bestKl) {
      bestKl = kl;
      best = i;
    }
  }
  return histogram.edge(best - 1);
}

class EntropyCalibrator extends HistogramCalibrator {
  readonly method = 'entropy' as const;

  constructor(
    bins: number,
    private readonly levels: 128 | 256 | 'auto',
    private readonly stride: number,
  ) {
    super(bins);
  }

  protected threshold(histogram: AbsHistogram): number {
    const levels = this.levels === 'auto' ? ((histogram.min ?? 0) >= 0 ? 256 : 128) : this.levels;
    return entropyThreshold(histogram, levels, this.stride);
  }
}

export function createCalibrator(method: CalibrationMethod, options: CalibratorOptions = {}): Calibrator {
  const bins = options.bins ?? CALIBRATOR_DEFAULTS.bins;
  switch (method) {
    case 'minmax':
      return new MinMaxCalibrator();
    case 'percentile': {
      const percentile = options.percentile ?? CALIBRATOR_DEFAULTS.percentile;
      if (!(percentile > 0 && percentile <= 100)) {
        throw new OutpostError('INVALID_ARGUMENT', `percentile must be in (0, 100], got ${percentile}`);
      }
      return new PercentileCalibrator(bins, percentile);
    }
    case 'entropy':
      return new EntropyCalibrator(
        bins,
        options.levels ?? CALIBRATOR_DEFAULTS.levels,
        options.stride ?? CALIBRATOR_DEFAULTS.stride,
      );
    default:
      throw new OutpostError(
        'INVALID_ARGUMENT',
        `unknown calibration method "${String(method)}"; expected one of ${CALIBRATION_METHODS.join(', ')}`,
        { details: { method, accepted: CALIBRATION_METHODS } },
      );
  }
}
