import { OutpostError } from '../../runtime/errors.js';
import type { AccuracyFigures } from './metrics.js';

/**
 * The accuracy a variant must keep against the fp32 original, on every output. `--accuracy-budget 0.99` means
 * cosine ≥ 0.99; the long form names each bound: `cosine=0.99,top1=0.98,max_abs=0.05,relative=0.1`.
 */
export interface AccuracyBudget {
  readonly cosine: number;
  /** Minimum argmax agreement on classifier-like outputs. */
  readonly top1?: number;
  readonly maxAbs?: number;
  readonly relative?: number;
}

export const DEFAULT_BUDGET: AccuracyBudget = Object.freeze({ cosine: 0.99 });

const KEYS = Object.freeze({ cosine: 'cosine', top1: 'top1', max_abs: 'maxAbs', relative: 'relative' } as const);

export function parseBudget(text: string): AccuracyBudget {
  const bad = (why: string) =>
    new OutpostError(
      'INVALID_ARGUMENT',
      `--accuracy-budget "${text}": ${why}; e.g. 0.99 or cosine=0.99,top1=0.98,max_abs=0.05,relative=0.1`,
    );
  if (/^[0-9.]+$/.test(text)) {
    const cosine = Number(text);
    if (!(cosine > 0 && cosine <= 1)) throw bad('cosine must be in (0, 1]');
    return { cosine };
  }
  const budget: { cosine: number; top1?: number; maxAbs?: number; relative?: number } = {
    cosine: DEFAULT_BUDGET.cosine,
  };
  for (const part of text.split(',')) {
    const [key, value] = part.split('=');
    if (key === undefined || value === undefined || !Object.hasOwn(KEYS, key))
      throw bad(`unknown bound "${part}" (${Object.keys(KEYS).join(', ')})`);
    const n = Number(value);
    if (!Number.isFinite(n) || n < 0) throw bad(`"${value}" is not a non-negative number`);
    budget[KEYS[key as keyof typeof KEYS]] = n;
  }
  return budget;
}

export type { AccuracyFigures, OutputAccuracy } from './metrics.js';

/** Which bounds a variant misses, in words; empty when it is within budget. */
export function budgetMisses(f: AccuracyFigures, budget: AccuracyBudget): string[] {
  const misses: string[] = [];
  for (const [name, o] of Object.entries(f.outputs)) {
    // A NaN or Infinity where the original has a number (or the reverse) is a wrong answer whatever the averages say.
    if (o.nonfinite_mismatches !== undefined && o.nonfinite_mismatches > 0)
      misses.push(`${name}: ${o.nonfinite_mismatches} values are NaN/Infinity on one side only`);
    if (!(o.cosine >= budget.cosine)) misses.push(`${name}: cosine ${o.cosine.toFixed(5)} < ${budget.cosine}`);
    if (budget.top1 !== undefined && o.top1_agreement !== undefined && o.top1_agreement < budget.top1) {
      misses.push(`${name}: top-1 agreement ${o.top1_agreement.toFixed(4)} < ${budget.top1}`);
    }
    if (budget.maxAbs !== undefined && !(o.max_abs_err <= budget.maxAbs))
      misses.push(`${name}: max |Δ| ${o.max_abs_err.toPrecision(4)} > ${budget.maxAbs}`);
    if (budget.relative !== undefined && !(o.relative_err <= budget.relative)) {
      misses.push(`${name}: relative error ${o.relative_err.toPrecision(4)} > ${budget.relative}`);
    }
  }
  return misses;
}
