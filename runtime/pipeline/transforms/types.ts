import type { z } from 'zod';
import type { TensorSpec } from '../../artifact/manifest.js';
import type { TensorValue } from '../../backends/types.js';
import type { DType } from '../../tensor/dtype.js';

/**
 * A built-in transform: one small, pure step of a pipeline (docs/pipelines.md, "Transforms"). Each declares its
 * parameters (a zod schema: a value out of range is a typed error naming the step and the parameter), its inputs
 * (accepted dtypes and rank, checked against whatever feeds them when the pipeline is validated) and how its output
 * shapes follow from its inputs', so a pipeline whose steps do not fit is refused at build time, not on a request.
 */
export interface TransformDef<P> {
  readonly op: string;
  readonly summary: string;
  readonly params: z.ZodType<P>;
  readonly inputs: readonly PortSpec[];
  /** Output specs given the parameters and the specs feeding each input (symbolic dims stay symbols). */
  outputs(params: P, inputs: Readonly<Record<string, TensorSpec>>): TensorSpec[];
  /** Binds the parameters once (reads label files, builds tables); the result runs once per request. */
  prepare(params: P, context: TransformContext): Promise<TransformRun> | TransformRun;
}

export interface PortSpec {
  readonly name: string;
  readonly dtypes: readonly DType[];
  /** Required rank; undefined accepts any. */
  readonly rank?: number;
  /** A port that may be left unmapped. */
  readonly optional?: boolean;
}

export interface TransformContext {
  /** Absolute path of a file bundled in the pipeline artifact (label files); refuses files the manifest lacks. */
  file(path: string): string;
}

export type Tensors = Readonly<Record<string, TensorValue>>;
export type TransformRun = (inputs: Tensors) => Promise<Record<string, TensorValue>> | Record<string, TensorValue>;

/** Erases the parameter type for the frozen table of transforms. */
export type AnyTransform = TransformDef<never> & { readonly params: z.ZodType };

/** A plain tensor value (not tied to a backend). */
export function tensor(type: DType, data: TensorValue['data'], dims: readonly number[]): TensorValue {
  return { type, data, dims };
}
