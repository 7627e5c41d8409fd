import type { TensorSpec } from '../../runtime/artifact/index.js';
import { Agreement, looksLikeClassifier } from '../../runtime/tensor/index.js';

/**
 * The compile report's accuracy figures, from one `Agreement` (runtime/tensor/agreement.ts) per output: the same
 * accumulator the shadow comparison uses, so both treat NaN and Infinity alike (the same non-finite value at the
 * same place agrees; on one side only it is a disagreement, max |Δ| = Infinity).
 */
export interface OutputAccuracy {
  readonly cosine: number;
  readonly max_abs_err: number;
  readonly relative_err: number;
  readonly top1_agreement?: number;
  /** Values that are NaN/±Infinity on one side only (present when there are any). */
  readonly nonfinite_mismatches?: number;
}

/** The worst output for each metric, plus every output. */
export interface AccuracyFigures extends OutputAccuracy {
  readonly outputs: Readonly<Record<string, OutputAccuracy>>;
}

/** One accumulator per output of the model, classifier-like outputs counting argmax agreement. */
export function outputAgreements(specs: readonly Pick<TensorSpec, 'name' | 'shape'>[]): Map<string, Agreement> {
  return new Map(specs.map((s) => [s.name, new Agreement(looksLikeClassifier(s.shape))]));
}

export function figures(agreements: ReadonlyMap<string, Agreement>): AccuracyFigures {
  const outputs: Record<string, OutputAccuracy> = {};
  let cosine = 1;
  let maxAbs = 0;
  let relative = 0;
  let top1: number | undefined;
  let mismatches = 0;
  for (const [name, agreement] of agreements) {
    const a = agreement.figures();
    const t = a.top1Agreement;
    outputs[name] = {
      cosine: a.cosine,
      max_abs_err: a.maxAbsError,
      relative_err: a.relativeError,
      ...(t === undefined ? {} : { top1_agreement: t }),
      ...(a.nonFiniteMismatches === 0 ? {} : { nonfinite_mismatches: a.nonFiniteMismatches }),
    };
    cosine = Math.min(cosine, a.cosine);
    maxAbs = Math.max(maxAbs, a.maxAbsError);
    relative = Math.max(relative, a.relativeError);
    mismatches += a.nonFiniteMismatches;
    if (t !== undefined) top1 = Math.min(top1 ?? 1, t);
  }
  return {
    cosine,
    max_abs_err: maxAbs,
    relative_err: relative,
    ...(top1 === undefined ? {} : { top1_agreement: top1 }),
    ...(mismatches === 0 ? {} : { nonfinite_mismatches: mismatches }),
    outputs,
  };
}
