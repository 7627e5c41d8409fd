import { readFile } from 'node:fs/promises';
import * as z from 'zod';
import { OutpostError, fromFsError, messageOf } from '../../runtime/errors.js';
import { artifact } from '../../runtime/index.js';

/**
 * `pipeline.json`, the source of `outpost pipeline build` (docs/pipelines.md, "pipeline.json"): the pipeline's
 * identity and inputs, where each model comes from, the files its transforms read (key files), and the steps and
 * outputs exactly as the artifact's `cascade` carries them. Paths are relative to the pipeline.json.
 */
const compileSchema = z
  .object({
    precision: z.enum(['auto', 'fp32', 'fp16', 'int8']).default('fp32'),
    /** Fixes the model's input shapes (a compiled model has fixed shapes): input name → dims. */
    inputShape: z.record(z.string(), z.array(z.number().int().positive())).optional(),
    /** A directory or file of calibration inputs (relative to pipeline.json), or "synthetic". */
    calibration: z.string().optional(),
    /** Image pre-processing for image calibration files (`compile --preprocess`). */
    preprocess: z.string().optional(),
  })
  .strict();

export const modelSourceSchema = z.union([
  /**
   * An ONNX file. With `compile`, compiled for the target like `outpost compile` (fixed shapes, graded variants);
   * without, bundled as it is (one fp32 variant, symbolic dimensions kept: a detector that takes any image size).
   */
  z.object({ file: z.string().min(1), compile: compileSchema.optional() }).strict(),
  /** An artifact compiled beforehand (directory or .tar.gz), verified and bundled. */
  z.object({ artifact: z.string().min(1) }).strict(),
  /** An artifact installed on the device, referenced by name and pinned version; not bundled. */
  z.object({ name: z.string().min(1), version: z.string().min(1) }).strict(),
]);

export const pipelineSourceSchema = z
  .object({
    name: z.string(),
    version: z.string(),
    description: z.string().optional(),
    inputs: z.array(artifact.tensorSpecSchema).min(1),
    models: z.record(z.string().regex(/^[A-Za-z][A-Za-z0-9_-]{0,63}$/), modelSourceSchema).default({}),
    /** Artifact path → source file, for what transforms read (`ctc-decode`'s `labels`). */
    files: z.record(artifact.relativePathSchema, z.string().min(1)).default({}),
    steps: z.array(artifact.cascadeStepSchema).min(1),
    outputs: z.record(z.string(), artifact.tensorRefSchema),
    /**
     * End-to-end samples recorded at build as the artifact's test vectors (vectors.ts): each case names a file per
     * input (an image's bytes for a uint8 [n] input, else a `.npy`); numeric outputs compared within `tolerance`.
     */
    testVectors: z
      .object({
        cases: z.array(z.record(z.string(), z.string().min(1))).min(1),
        tolerance: z.object({ atol: z.number().nonnegative(), rtol: z.number().nonnegative() }).strict().optional(),
      })
      .strict()
      .optional(),
  })
  .strict();

export type PipelineSource = z.infer<typeof pipelineSourceSchema>;
export type ModelSource = z.infer<typeof modelSourceSchema>;

export async function readPipelineSource(path: string): Promise<PipelineSource> {
  const text = await readFile(path, 'utf8').catch((error: unknown) => {
    throw fromFsError(error, path, 'read');
  });
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    throw new OutpostError('PIPELINE_INVALID', `${path}: not valid JSON: ${messageOf(error)}`, { cause: error });
  }
  const parsed = pipelineSourceSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = artifact.formatFieldPath(issue?.path ?? []);
    throw new OutpostError('PIPELINE_INVALID', `${path}: ${where}: ${issue?.message ?? 'invalid'}`, {
      details: { path, field: where, problems: parsed.error.issues.map((i) => i.message) },
    });
  }
  return parsed.data;
}
