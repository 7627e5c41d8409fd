import type { OnnxModel } from '../onnx/index.js';
import type { TargetProfile } from '../targets/types.js';

/** What a pass reports back to the compile report: warnings, and nodes it left alone and why. */
export interface PassReport {
  readonly warnings: string[];
  readonly excludedNodes: { node: string; op: string; reason: string }[];
}

export interface PassContext {
  readonly target: TargetProfile;
  /** Compiling for the machine we run on: hardware-specific optimisation is allowed. */
  readonly host: boolean;
  /** Scratch directory for intermediate files; removed by the caller. */
  readonly workDir: string;
  readonly report: PassReport;
}

/**
 * A compiler pass: `(model, context, options) → model`. A pass owns the model it is given and may edit its proto in
 * place; a caller that still needs the original clones it first (`cloneModel`).
 */
export type Pass<O = undefined> = (model: OnnxModel, context: PassContext, options: O) => Promise<OnnxModel>;

export function emptyReport(): PassReport {
  return { warnings: [], excludedNodes: [] };
}
