import type { Precision } from '../runtime/artifact/manifest.js';

/** One variant in the compile report (DESIGN.md, "CLI contract": `compile --json`). */
export interface VariantReport {
  id: string;
  precision: Precision;
  format: 'onnx' | 'ort';
  bytes: number;
  accuracy: { cosine: number; max_abs_err: number; relative_err: number; top1_agreement?: number };
  latency_p50_ms?: number;
  /** Nodes left in float (mixed precision) or skipped by a pass, with why. */
  excluded_nodes: { node: string; op: string; reason: string }[];
  /** Within the accuracy budget; false only when shipped under --allow-accuracy-loss. */
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
  /** Variants produced but not shipped (missed the budget), with why. */
  rejected: { id: string; precision: Precision; reason: string }[];
  calibration: { source: string; samples: number; evaluation_samples: number; synthetic: boolean; method?: string };
  warnings: string[];
  output: string;
  seconds: number;
}
