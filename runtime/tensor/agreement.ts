import type { DType, TensorData } from './dtype.js';
import { bfloat16ToFloat32, float16ToFloat32 } from './float16.js';

/**
 * How closely one tensor stream follows another: a variant's outputs against the fp32 original's (the compiler's
 * accuracy gate, compiler/evaluate/) and a shadow version's against production's (runtime/server/serving/shadow.ts). The
 * one place these figures are computed, so the two cannot disagree on what "agree" means.
 *
 * Accumulated over many calls so memory stays bounded: sums for cosine and relative L2 error, the running max |Δ|,
 * and argmax agreement for classifier-like outputs (one decision per row of the last axis).
 *
 * Non-finite values (IEEE 754 NaN and ±Infinity):
 * - the same NaN or the same infinity at the same place on both sides agrees: it adds nothing to any error, so an
 *   exact copy of a model whose outputs hold NaN grades as identical;
 * - NaN or Infinity on one side and anything else on the other is a disagreement that shows: max |Δ| and relative
 *   error become Infinity, the position counts in `nonFiniteMismatches`, and cosine is scaled down by the share of
 *   positions that disagree this way (a position where one side has no number agrees on nothing);
 * - a row holding such a disagreement counts as a disagreeing decision.
 * Tensors of different lengths disagree everywhere.
 */
export interface AgreementFigures {
  /** Cosine similarity over the finite positions, times the share of positions without a non-finite mismatch. */
  readonly cosine: number;
  readonly maxAbsError: number;
  /** ‖actual − expected‖ / ‖expected‖ over finite positions; Infinity when any position mismatches non-finitely. */
  readonly relativeError: number;
  /** Share of rows whose argmax agrees; undefined unless classifier-like. */
  readonly top1Agreement: number | undefined;
  /** Positions where exactly one side is NaN/±Infinity, or both are but differ. */
  readonly nonFiniteMismatches: number;
  /** Positions compared. */
  readonly count: number;
}

/** An output looks like a classifier's when it ends in a class axis of at least two entries. */
export function looksLikeClassifier(shape: readonly (number | string | null)[]): boolean {
  const last = shape[shape.length - 1];
  return shape.length >= 2 && typeof last === 'number' && last >= 2;
}

/** Same value, or both NaN: `Object.is` without its +0/−0 distinction. */
function same(a: number, e: number): boolean {
  return a === e || (a !== a && e !== e);
}

/** Whether some position of the row is NaN/±Infinity on one side and something else on the other. */
function nonFiniteMismatchIn(actual: TensorData, expected: TensorData, start: number, length: number): boolean {
  for (let i = start; i < start + length; i++) {
    const a = Number(actual[i]);
    const e = Number(expected[i]);
    if (!(Number.isFinite(a) && Number.isFinite(e)) && !same(a, e)) return true;
  }
  return false;
}

/** Index of the largest value; a NaN wins (numpy.argmax's rule), the first one if several. */
function argmax(data: TensorData, start: number, length: number): number {
  let best = 0;
  let bestValue = -Infinity;
  for (let i = 0; i < length; i++) {
    const v = Number(data[start + i]);
    if (Number.isNaN(v)) return i;
    if (v > bestValue) {
      bestValue = v;
      best = i;
    }
  }
  return best;
}

export class Agreement {
  private readonly total = new Sums();

  /** `classifier`: count argmax agreement per row of the last axis (see `looksLikeClassifier`). */
  constructor(readonly classifier: boolean) {}

  /**
   * Adds one pair of tensors (numeric or string) and returns the figures of this pair alone. `dims` is the shape of
   * `expected`, for rows; `dtype` says how to read the data (float16 and bfloat16 travel as Uint16Array bit
   * patterns, which are compared as the numbers they encode, not as integers).
   */
  add(actual: TensorData, expected: TensorData, dims: readonly number[], dtype?: DType): AgreementFigures {
    if (dtype === 'float16' || dtype === 'bfloat16') {
      const widen = dtype === 'float16' ? float16ToFloat32 : bfloat16ToFloat32;
      const bits = (d: TensorData) => (d instanceof Uint16Array ? widen(d) : d);
      return this.add(bits(actual), bits(expected), dims);
    }
    const pair = new Sums();
    if (actual.length !== expected.length) {
      pair.mismatched = Math.max(actual.length, expected.length, 1);
      pair.values = pair.mismatched;
      pair.maxAbs = Infinity;
    } else if (Array.isArray(actual) || Array.isArray(expected)) {
      pair.values = expected.length;
      for (let i = 0; i < expected.length; i++) if (actual[i] !== expected[i]) pair.mismatched++;
      if (pair.mismatched > 0) pair.maxAbs = Infinity;
    } else {
      pair.accumulate(actual, expected);
    }
    // An empty class axis (Tile by 0, TopK with k = 0) has no decisions; stepping by 0 rows would never end.
    const classes = dims[dims.length - 1] ?? 1;
    if (this.classifier && actual.length === expected.length && classes >= 1) {
      for (let row = 0; row + classes <= expected.length; row += classes) {
        pair.rows++;
        const agrees =
          !nonFiniteMismatchIn(actual, expected, row, classes) &&
          argmax(actual, row, classes) === argmax(expected, row, classes);
        if (agrees) pair.agreeingRows++;
      }
    }
    this.total.merge(pair);
    return pair.figures(this.classifier);
  }

  /** The figures over everything added so far. */
  figures(): AgreementFigures {
    return this.total.figures(this.classifier);
  }

  get cosine(): number {
    return this.figures().cosine;
  }

  get maxAbsError(): number {
    return this.total.maxAbs;
  }

  get relativeError(): number {
    return this.figures().relativeError;
  }

  get top1Agreement(): number | undefined {
    return this.figures().top1Agreement;
  }

  get nonFiniteMismatches(): number {
    return this.total.mismatched;
  }

  get count(): number {
    return this.total.values;
  }

  /** Classifier rows compared. */
  get rows(): number {
    return this.total.rows;
  }
}

class Sums {
  dot = 0;
  normActual = 0;
  normExpected = 0;
  squaredError = 0;
  maxAbs = 0;
  mismatched = 0;
  values = 0;
  rows = 0;
  agreeingRows = 0;

  merge(other: Sums): void {
    this.dot += other.dot;
    this.normActual += other.normActual;
    this.normExpected += other.normExpected;
    this.squaredError += other.squaredError;
    this.maxAbs = Math.max(this.maxAbs, other.maxAbs);
    this.mismatched += other.mismatched;
    this.values += other.values;
    this.rows += other.rows;
    this.agreeingRows += other.agreeingRows;
  }

  accumulate(actual: Exclude<TensorData, string[]>, expected: Exclude<TensorData, string[]>): void {
    const n = expected.length;
    for (let i = 0; i < n; i++) {
      const a = Number(actual[i]);
      const e = Number(expected[i]);
      if (Number.isFinite(a) && Number.isFinite(e)) {
        const d = a - e;
        this.dot += a * e;
        this.normActual += a * a;
        this.normExpected += e * e;
        this.squaredError += d * d;
        const abs = d < 0 ? -d : d;
        if (abs > this.maxAbs) this.maxAbs = abs;
      } else if (!same(a, e)) {
        this.mismatched++;
        this.maxAbs = Infinity;
      }
    }
    this.values += n;
  }

  figures(classifier: boolean): AgreementFigures {
    let cosine: number;
    if (this.normActual === 0 && this.normExpected === 0) cosine = 1;
    else if (this.dot === this.normActual && this.dot === this.normExpected)
      cosine = 1; // equal vectors, without sqrt's rounding
    else {
      const denominator = Math.sqrt(this.normActual) * Math.sqrt(this.normExpected);
      cosine = denominator === 0 ? 0 : Math.max(-1, Math.min(1, this.dot / denominator));
    }
    if (this.mismatched > 0) cosine *= this.values === 0 ? 0 : 1 - this.mismatched / this.values;
    let relativeError: number;
    if (this.mismatched > 0) relativeError = Infinity;
    else if (this.normExpected === 0) relativeError = this.squaredError === 0 ? 0 : Infinity;
    else relativeError = Math.sqrt(this.squaredError / this.normExpected);
    return {
      cosine,
      maxAbsError: this.maxAbs,
      relativeError,
      top1Agreement: classifier && this.rows > 0 ? this.agreeingRows / this.rows : undefined,
      nonFiniteMismatches: this.mismatched,
      count: this.values,
    };
  }
}
