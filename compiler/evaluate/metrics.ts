import type { TensorData } from '../../runtime/tensor/dtype.js';

/**
 * Agreement between a variant's outputs and the fp32 original's, accumulated over many samples so memory stays
 * bounded: sums for cosine and relative L2 error, the running max |Δ|, and argmax agreement for classifier-like
 * outputs (rank ≥ 2, last axis ≥ 2 classes: one decision per row).
 */
export class OutputAgreement {
  private dot = 0;
  private normActual = 0;
  private normExpected = 0;
  private squaredError = 0;
  private maxAbs = 0;
  private rows = 0;
  private agreeingRows = 0;
  private values = 0;

  constructor(readonly classifier: boolean) {}

  add(actual: TensorData, expected: TensorData, dims: readonly number[]): void {
    const n = expected.length;
    for (let i = 0; i < n; i++) {
      const a = Number(actual[i]);
      const e = Number(expected[i]);
      const d = a - e;
      this.dot += a * e;
      this.normActual += a * a;
      this.normExpected += e * e;
      this.squaredError += d * d;
      const abs = Number.isNaN(d) ? Infinity : Math.abs(d);
      if (abs > this.maxAbs) this.maxAbs = abs;
    }
    this.values += n;
    if (this.classifier) {
      const classes = dims[dims.length - 1] ?? 1;
      for (let row = 0; row + classes <= n; row += classes) {
        this.rows++;
        if (argmax(actual, row, classes) === argmax(expected, row, classes)) this.agreeingRows++;
      }
    }
  }

  /** Cosine similarity over everything seen (1 when both are all zeros). */
  get cosine(): number {
    if (this.normActual === 0 && this.normExpected === 0) return 1;
    const denominator = Math.sqrt(this.normActual) * Math.sqrt(this.normExpected);
    return denominator === 0 ? 0 : this.dot / denominator;
  }

  get maxAbsError(): number {
    return this.maxAbs;
  }

  /** ‖actual − expected‖ / ‖expected‖. */
  get relativeError(): number {
    return this.normExpected === 0
      ? this.squaredError === 0
        ? 0
        : Infinity
      : Math.sqrt(this.squaredError / this.normExpected);
  }

  get top1Agreement(): number | undefined {
    return this.classifier && this.rows > 0 ? this.agreeingRows / this.rows : undefined;
  }

  get count(): number {
    return this.values;
  }
}

function argmax(data: TensorData, start: number, length: number): number {
  let best = 0;
  let bestValue = -Infinity;
  for (let i = 0; i < length; i++) {
    const v = Number(data[start + i]);
    if (v > bestValue) {
      bestValue = v;
      best = i;
    }
  }
  return best;
}

/** An output looks like a classifier's when it ends in a class axis of at least two entries. */
export function looksLikeClassifier(shape: readonly (number | string)[]): boolean {
  const last = shape[shape.length - 1];
  return shape.length >= 2 && typeof last === 'number' && last >= 2;
}
