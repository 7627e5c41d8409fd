import { logger } from '../runtime/log.js';
import { budgetMisses, type AccuracyBudget, type AccuracyFigures } from './evaluate/budget.js';

const log = logger('compiler.mixed-precision');

/** How the search builds and grades candidate models; the compile pipeline supplies real quantisation + evaluation. */
export interface MixedPrecisionProbe {
  /** Nodes the quantiser would quantise, in graph order. */
  readonly candidates: readonly string[];
  /** A model with exactly `quantized` nodes quantised; returns its file path. */
  build(quantized: ReadonlySet<string>): Promise<string>;
  evaluate(path: string): Promise<AccuracyFigures>;
  /**
   * How many weights the built model really holds in int8. Keeping one node float can leave its neighbours float
   * too (ONNX Runtime only fuses what sits between Q and DQ), so a split that quantises nothing in effect is the
   * fp32 model again and does not count as a pass.
   */
  quantizedWeights(path: string): Promise<number>;
  onProgress?: (done: number, total: number) => void;
}

export interface SensitiveNode {
  readonly node: string;
  /** 1 − cosine of the worst output with only this node quantised: how much damage it does on its own. */
  readonly sensitivity: number;
}

export interface MixedPrecisionResult {
  readonly path: string;
  readonly figures: AccuracyFigures;
  /** Nodes kept in float, most sensitive first. */
  readonly keptFloat: readonly SensitiveNode[];
  readonly sensitivities: readonly SensitiveNode[];
}

/**
 * Automatic mixed precision: measure each node's sensitivity by quantising it alone, then keep the most sensitive
 * nodes in float — the fewest that bring the model back within budget. The count is found by doubling then
 * bisecting, so a model of N quantisable nodes costs N + O(log N) evaluations. At least one node stays quantised
 * (all-float would just be the fp32 variant again): undefined when no such split meets the budget.
 */
export async function mixedPrecision(
  probe: MixedPrecisionProbe,
  budget: AccuracyBudget,
): Promise<MixedPrecisionResult | undefined> {
  const all = probe.candidates;
  if (all.length < 2) return undefined;
  const most = all.length - 1;
  const total = all.length + Math.ceil(Math.log2(all.length + 1)) * 2;
  let done = 0;
  const tick = () => probe.onProgress?.(++done, total);

  const sensitivities: SensitiveNode[] = [];
  for (const node of all) {
    const figures = await probe.evaluate(await probe.build(new Set([node])));
    sensitivities.push({ node, sensitivity: 1 - figures.cosine });
    tick();
  }
  sensitivities.sort((a, b) => b.sensitivity - a.sensitivity);

  const attempt = async (k: number): Promise<{ path: string; figures: AccuracyFigures } | undefined> => {
    const floatNodes = new Set(sensitivities.slice(0, k).map((s) => s.node));
    const path = await probe.build(new Set(all.filter((n) => !floatNodes.has(n))));
    const figures = await probe.evaluate(path);
    tick();
    const misses = budgetMisses(figures, budget);
    const quantized = misses.length === 0 ? await probe.quantizedWeights(path) : 0;
    log.debug({ keptFloat: k, cosine: figures.cosine, misses, quantized }, 'mixed-precision attempt');
    return misses.length === 0 && quantized > 0 ? { path, figures } : undefined;
  };

  // Doubling: the first k that passes bounds the answer; the last failing k below it is the other bound.
  let low = 0;
  let high = -1;
  let best: { path: string; figures: AccuracyFigures } | undefined;
  for (let k = 1; ; k = Math.min(k * 2, most)) {
    const result = await attempt(k);
    if (result !== undefined) {
      high = k;
      best = result;
      break;
    }
    low = k;
    if (k === most) return undefined;
  }
  // Bisect (low fails, high passes) for the smallest passing k.
  while (high - low > 1) {
    const mid = Math.floor((low + high) / 2);
    const result = await attempt(mid);
    if (result !== undefined) {
      high = mid;
      best = result;
    } else low = mid;
  }
  probe.onProgress?.(total, total);
  return { path: best.path, figures: best.figures, keptFloat: sensitivities.slice(0, high), sensitivities };
}
