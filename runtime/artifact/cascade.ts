import * as z from 'zod';
import { relativePathSchema } from './manifest-paths.js';

/**
 * The `cascade` field of a pipeline artifact's manifest (docs/pipelines.md): the steps of a pipeline, the models
 * they run and the tensor mapping between them. A manifest with `cascade` is a pipeline artifact: signed, hashed and
 * verified exactly like a model artifact (the bundled models' files are among its `files`), its `inputs` and `outputs`
 * are the pipeline's, and it carries no `variants` of its own (each bundled model is a complete model artifact in a
 * sub-directory, with its own variants, pre-processing and test vectors).
 */

/** `step.output`, or `inputs.<name>` for one of the pipeline's inputs; tensor names may contain dots. */
export const tensorRefSchema = z
  .string()
  .regex(/^[A-Za-z][A-Za-z0-9_-]{0,63}\.[^\s]{1,256}$/, 'a "step.output" (or "inputs.name") reference');

export const stepIdSchema = z
  .string()
  .regex(/^[A-Za-z][A-Za-z0-9_-]{0,63}$/, 'letters, digits, "_" or "-", starting with a letter (max 64)')
  .refine((id) => id !== 'inputs', { message: '"inputs" names the pipeline\'s own inputs' });

export const cascadeModelSchema = z.union([
  /** Bundled: a complete model artifact inside the pipeline artifact (every file of it listed in `files`). */
  z.object({ dir: relativePathSchema }).strict(),
  /** Referenced: an artifact installed on the device under this name and pinned version. */
  z.object({ name: z.string().min(1), version: z.string().min(1) }).strict(),
]);

export const cascadeStepSchema = z
  .object({
    id: stepIdSchema,
    /** A built-in transform (runtime/pipeline/transforms/) … */
    transform: z.string().min(1).optional(),
    /** … or a model, by its key in `models`. */
    model: z.string().min(1).optional(),
    params: z.record(z.string(), z.unknown()).default({}),
    /** The step's input name → the tensor that feeds it. */
    inputs: z.record(z.string(), tensorRefSchema),
    /**
     * Model steps only: run once per item of the inputs' first axis (one crop, one object), up to this many items per
     * model run; the outputs are concatenated along the first axis. Absent: one run with the whole tensor.
     */
    batch: z.number().int().min(1).max(256).optional(),
  })
  .strict()
  .refine((s) => (s.transform === undefined) !== (s.model === undefined), {
    message: 'a step runs exactly one of "transform" or "model"',
  });

export const cascadeSchema = z
  .object({
    models: z.record(z.string().regex(/^[A-Za-z][A-Za-z0-9_-]{0,63}$/), cascadeModelSchema).default({}),
    steps: z.array(cascadeStepSchema).min(1).max(64),
    /** Output name → the tensor it is. Each becomes one of the manifest's `outputs`. */
    outputs: z.record(z.string(), tensorRefSchema),
  })
  .strict();

export type TensorRef = z.infer<typeof tensorRefSchema>;
export type CascadeModel = z.infer<typeof cascadeModelSchema>;
export type CascadeStep = z.infer<typeof cascadeStepSchema>;
export type Cascade = z.infer<typeof cascadeSchema>;

/** `det.sigmoid_0.tmp_0` → { step: 'det', tensor: 'sigmoid_0.tmp_0' } (step ids have no dots; tensor names may). */
export function splitRef(ref: string): { step: string; tensor: string } {
  const dot = ref.indexOf('.');
  return { step: ref.slice(0, dot), tensor: ref.slice(dot + 1) };
}
