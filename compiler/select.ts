import type { Precision } from '../runtime/artifact/index.js';
import type { AccuracyFigures } from './evaluate/budget.js';
import type { ChosenFormat } from './formats.js';
import type { CompileInputs } from './inputs.js';
import type { ShippedVariant } from './output.js';
import { accuracyOf, jsonSafe, type CompileReport, type VariantReport } from './report.js';
import type { TargetProfile } from './targets/types.js';
import type { BuiltVariant, VariantContext } from './variants.js';

/**
 * Ranking the shipped variants and the report that describes them. On the host (or `--tune`) variants are ranked by
 * the latency measured here; cross-compiling, by the target's plan (the device benchmarks them at install). A
 * variant is described by the file it ships as: an `.ort`'s own accuracy, when it has one, replaces its `.onnx`'s.
 */
export interface Selection {
  readonly target: TargetProfile;
  readonly shipped: readonly BuiltVariant[];
  readonly rejected: CompileReport['rejected'];
  readonly formats: ReadonlyMap<string, ChosenFormat>;
  readonly latency: ReadonlyMap<string, number>;
  readonly measure: boolean;
  readonly plan: readonly Precision[];
  readonly data: CompileInputs;
  readonly ctx: VariantContext;
  readonly warnings: readonly string[];
}

function toleranceFor(f: AccuracyFigures | undefined): { atol: number; rtol: number } {
  // The self-test catches a broken install, not accuracy drift (the compile gate did that): twice the worst error
  // seen on held-out data, plus float32 noise. A non-finite worst error (NaN on one side) has no finite bound: the
  // largest float, which still fails a NaN (allClose never passes NaN against a number).
  const worst = f?.max_abs_err ?? 0;
  return { atol: Number.isFinite(worst) ? worst * 2 + 1e-5 : Number.MAX_VALUE, rtol: 1e-3 };
}

/** The manifest's accuracy record: finite numbers only (the manifest schema and canonical JSON have no Infinity). */
function manifestAccuracy(f: AccuracyFigures | undefined): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(accuracyOf(f) ?? {})) if (Number.isFinite(v)) out[k] = v;
  return out;
}

export function rankAndReport(s: Selection): {
  variants: ShippedVariant[];
  report: Omit<CompileReport, 'output' | 'seconds'>;
} {
  const planIndex = (v: BuiltVariant) => s.plan.indexOf(v.precision === 'mixed' ? 'int8' : v.precision);
  const ranked = [...s.shipped].sort(
    (a, b) =>
      a.misses.length - b.misses.length ||
      (s.measure ? (s.latency.get(a.id) ?? Infinity) - (s.latency.get(b.id) ?? Infinity) : planIndex(a) - planIndex(b)),
  );
  const figuresOf = (v: BuiltVariant) => s.formats.get(v.id)?.figures ?? v.figures;
  const formatOf = (v: BuiltVariant): ChosenFormat =>
    s.formats.get(v.id) ?? { path: v.path, format: 'onnx', backends: v.backends, reason: '' };
  const variants: ShippedVariant[] = ranked.map((v, i) => {
    const f = formatOf(v);
    return {
      id: v.id,
      path: f.path,
      format: f.format,
      precision: v.precision,
      backends: f.backends,
      rank: i + 1,
      accuracy: manifestAccuracy(figuresOf(v)),
      accuracyWaived: v.misses.length > 0,
      tolerance: toleranceFor(figuresOf(v)),
    };
  });
  const graded = s.data.reference !== undefined;
  const report: Omit<CompileReport, 'output' | 'seconds'> = {
    target: s.target.key,
    selected: variants[0]?.id ?? '',
    selection: s.measure ? 'fixed' : 'device',
    variants: ranked.map((v): VariantReport => {
      const accuracy = accuracyOf(figuresOf(v));
      const latency = s.latency.get(v.id);
      return {
        id: v.id,
        precision: v.precision,
        format: formatOf(v).format,
        format_reason: formatOf(v).reason,
        bytes: 0,
        ...(accuracy === undefined ? {} : { accuracy }),
        graded,
        ...(latency === undefined ? {} : { latency_p50_ms: latency }),
        excluded_nodes: v.excluded,
        within_budget: graded && v.misses.length === 0,
        notes: [
          ...v.notes,
          ...(graded ? [] : [`NOT GRADED: ${s.data.ungraded ?? ''}`]),
          ...(v.misses.length === 0
            ? []
            : [`OUTSIDE BUDGET (shipped under --allow-accuracy-loss): ${v.misses.join('; ')}`]),
        ],
      };
    }),
    rejected: [...s.rejected],
    calibration: {
      source: s.data.source,
      samples: s.data.calibration.length,
      evaluation_samples: s.data.evaluation.length,
      synthetic: s.data.synthetic,
      method: s.ctx.method,
    },
    warnings: [...s.warnings],
  };
  return { variants, report: jsonSafe(report) };
}
