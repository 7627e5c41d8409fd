import { join } from 'node:path';
import type { BackendName } from '../runtime/artifact/index.js';
import { isOutpostError, messageOf } from '../runtime/errors.js';
import { budgetMisses, type AccuracyFigures } from './evaluate/budget.js';
import { loadModel } from './onnx/index.js';
import { convertToOrtFormat } from './passes/ort-format.js';
import type { BuiltVariant, VariantContext } from './variants.js';

/**
 * The file a variant ships as. ONNX Runtime's own format loads 2–3× faster (passes/README.md), but it is an
 * optional form: a compile never fails because of it. The `.ort` is judged as the variant was — graded against the
 * fp32 original on the held-out inputs with the accuracy budget, on each backend the variant promises — and when it
 * misses on native at every level tried, or would lose the WASM fallback the `.onnx` has, the variant ships as
 * `.onnx` and `reason` (the report's `format_reason`, and a warning) says why.
 */
export interface ChosenFormat {
  readonly path: string;
  readonly format: 'onnx' | 'ort';
  readonly backends: BackendName[];
  readonly reason: string;
  /** The shipped `.ort`'s own accuracy (native), which the report then gives for the variant. */
  readonly figures?: AccuracyFigures;
}

/** Whether the `.ort`'s figures are good enough: within budget, or for a waived variant no worse than its `.onnx`. */
function acceptable(ctx: VariantContext, v: BuiltVariant, f: AccuracyFigures): string | undefined {
  const misses = budgetMisses(f, ctx.budget);
  if (misses.length === 0) return undefined;
  const slack = 1 - ctx.budget.cosine;
  if (v.misses.length > 0 && v.figures !== undefined && f.cosine >= v.figures.cosine - slack) return undefined;
  return misses.join('; ');
}

export async function chooseFormat(
  v: BuiltVariant,
  ctx: VariantContext,
  wanted: { readonly ort: boolean; readonly why: string },
): Promise<ChosenFormat> {
  const onnx = (reason: string): ChosenFormat => ({ path: v.path, format: 'onnx', backends: v.backends, reason });
  if (!wanted.ort) return onnx(wanted.why);
  if (v.precision === 'fp16')
    return onnx('fp16 ships as .onnx: the CPU session that writes .ort would bake in its own fp16 Casts');
  const reference = ctx.reference;
  if (reference === undefined) return onnx('.ort not written: no input the original accepts to check it on');
  const figures = new Map<BackendName, AccuracyFigures>();
  const judge = async (ortPath: string, backend: BackendName) => {
    const f = await ctx.evaluator.accuracy(ortPath, reference, backend, `check ${v.id}.ort (${backend})`);
    figures.set(backend, f);
    const miss = acceptable(ctx, v, f);
    return miss === undefined ? { ok: true } : { ok: false, error: `against the fp32 original: ${miss}` };
  };
  try {
    const ort = await convertToOrtFormat(await loadModel(v.path), ctx.pass, {
      output: join(ctx.pass.workDir, `${v.id}.ort`),
      judge,
    });
    const native = figures.get('native');
    const lost = v.backends.filter((b) => !ort.backends.includes(b));
    if (lost.length > 0) {
      const why = ort.checks.find((c) => c.backend === lost[0])?.error ?? 'not loadable';
      return onnx(`the .ort does not serve ${lost.join(', ')} (${why.slice(0, 300)}); the .onnx keeps that fallback`);
    }
    const steps = ort.stepped.map((s) => `${s.level}: ${s.why.slice(0, 160)}`).join('; ');
    return {
      path: ort.path,
      format: 'ort',
      backends: ort.backends,
      reason: `ORT format at "${ort.level}", graded against the fp32 original on ${ort.backends.join(' and ')}${steps === '' ? '' : ` (left ${steps})`}`,
      ...(native === undefined ? {} : { figures: native }),
    };
  } catch (error) {
    if (!isOutpostError(error, 'MODEL_UNSUPPORTED') && !isOutpostError(error, 'EVALUATION_BUDGET_EXCEEDED'))
      throw error;
    const reason = `the ORT-format copy disagrees with its .onnx, so it ships as .onnx: ${messageOf(error)}`;
    ctx.pass.report.warnings.push(`${v.id}: ${reason.slice(0, 600)}`);
    return onnx(reason);
  }
}
