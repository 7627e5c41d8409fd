import type { Precision } from '../runtime/artifact/index.js';
import type { AccuracyFigures } from './evaluate/budget.js';

/** One variant in the compile report (docs/architecture.md, "CLI contract": `compile --json`). */
export interface VariantReport {
  id: string;
  precision: Precision;
  format: 'onnx' | 'ort';
  /** Why this format: the ORT-format check's outcome, or why `.onnx` was kept. */
  format_reason: string;
  bytes: number;
  /**
   * Against the fp32 original on held-out inputs, for the file shipped; absent when nothing could be graded
   * (`graded: false`). JSON has no Infinity: a NaN/Inf on one side only prints max_abs_err and relative_err null.
   */
  accuracy?: {
    cosine: number;
    max_abs_err: number;
    relative_err: number;
    top1_agreement?: number;
    nonfinite_mismatches?: number;
  };
  /** False when no input the original accepts could be made: shipped (fp32 only) without an accuracy check. */
  graded: boolean;
  latency_p50_ms?: number;
  /** Nodes left in float (mixed precision) or skipped by a pass, with why. */
  excluded_nodes: { node: string; op: string; reason: string }[];
  /** Within the accuracy budget; false when shipped under --allow-accuracy-loss (or not graded). */
  within_budget: boolean;
  /** How it was made: quantisation mode, calibration method, format conversions. */
  notes: string[];
}

/** `outpost compile --json` prints this; its summary goes into the artifact's manifest (`report`). */
export interface CompileReport {
  target: string;
  selected: string;
  /** "fixed": the compiler measured and chose (host, --tune); "device": the device benchmarks the candidates. */
  selection: 'fixed' | 'device';
  variants: VariantReport[];
  /** Variants produced (or planned) but not shipped, with why: missed the budget, quantised nothing, not gradable. */
  rejected: { id: string; precision: Precision; reason: string }[];
  calibration: { source: string; samples: number; evaluation_samples: number; synthetic: boolean; method?: string };
  warnings: string[];
  output: string;
  seconds: number;
}

/** The report's accuracy block for a variant's figures. */
export function accuracyOf(f: AccuracyFigures | undefined): VariantReport['accuracy'] {
  if (f === undefined) return undefined;
  return {
    cosine: f.cosine,
    max_abs_err: f.max_abs_err,
    relative_err: f.relative_err,
    ...(f.top1_agreement === undefined ? {} : { top1_agreement: f.top1_agreement }),
    ...(f.nonfinite_mismatches === undefined ? {} : { nonfinite_mismatches: f.nonfinite_mismatches }),
  };
}

/**
 * The report as plain JSON for the manifest: the manifest is signed over canonical JSON (RFC 8785), which has no
 * NaN or Infinity, so such numbers become null there as they do in `--json` output.
 */
export function jsonSafe<T>(value: T): T {
  return JSON.parse(JSON.stringify(value)) as T;
}
