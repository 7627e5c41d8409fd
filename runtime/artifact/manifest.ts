import * as z from 'zod';
import { DTYPE_NAMES, type DType } from '../tensor/dtype.js';
import { cascadeSchema } from './cascade.js';
import { relativePathSchema } from './manifest-paths.js';

export { relativePathSchema };

/**
 * `manifest.json`: what an artifact is and everything needed to trust and run it (docs/architecture.md, "The
 * artifact").
 * A device refuses a schema version it does not know; within a version, fields are only ever added as optional.
 */
export const SCHEMA_VERSION = 1;
export const SUPPORTED_SCHEMA_VERSIONS: readonly number[] = Object.freeze([1]);

export const MANIFEST_FILE = 'manifest.json';
export const SIGNATURE_FILE = 'manifest.sig';

const sha256 = z.string().regex(/^[0-9a-f]{64}$/, 'a lowercase hex sha256');
const relativePath = relativePathSchema;
const name = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/, 'letters, digits, ".", "_" or "-" (max 128)');

export const dtypeSchema = z.enum(DTYPE_NAMES as [DType, ...DType[]]);
/** A dimension: a fixed size, or a symbol (`batch`, `sequence`) bound at load or per call. */
export const dimSchema = z.union([z.number().int().nonnegative(), z.string().min(1)]);

export const tensorSpecSchema = z.object({
  name: z.string().min(1),
  dtype: dtypeSchema,
  shape: z.array(dimSchema),
});

export const precisionSchema = z.enum(['fp32', 'fp16', 'int8', 'mixed']);
export const backendNameSchema = z.enum(['native', 'wasm']);

export const variantSchema = z.object({
  id: name,
  file: relativePath,
  precision: precisionSchema,
  format: z.enum(['onnx', 'ort']),
  sha256,
  bytes: z.number().int().nonnegative(),
  /** Backends able to run this variant (an ORT-format file optimised at the full level runs only where it was made). */
  backends: z.array(backendNameSchema).min(1),
  /** 1 = preferred. Ties are broken by order. */
  rank: z.number().int().positive(),
  /** Execution providers in preference order, e.g. ["tensorrt", "cuda", "cpu"]. */
  executionProviders: z.array(z.string()).optional(),
  /** Accuracy against the fp32 original, measured at compile time. */
  accuracy: z.record(z.string(), z.number()).optional(),
  /** Self-test tolerance for this variant against the test vectors' expected (fp32) outputs; else the artifact's. */
  tolerance: z.object({ atol: z.number().nonnegative(), rtol: z.number().nonnegative() }).optional(),
  /** Shipped although it missed its accuracy budget (`--allow-accuracy-loss`). */
  accuracyWaived: z.boolean().optional(),
});

export const targetSchema = z.object({
  /** The profile key from the compiler's target table, e.g. "arm64:cortex-a72", or "any". */
  profile: z.string().min(1),
  arch: z.enum(['x86_64', 'arm64', 'any']),
  cpu: z.string().optional(),
  features: z.array(z.string()).default([]),
  accelerator: z.enum(['cuda']).optional(),
});

/** Image → tensor. The compiler's `--preprocess` and the server's pipelines share this schema. */
export const imagePreprocessSchema = z.object({
  kind: z.literal('image'),
  input: z.string().min(1),
  width: z.number().int().positive(),
  height: z.number().int().positive(),
  resize: z.enum(['stretch', 'letterbox', 'center-crop']).default('stretch'),
  colorOrder: z.enum(['RGB', 'BGR', 'GRAY']).default('RGB'),
  layout: z.enum(['NCHW', 'NHWC']).default('NCHW'),
  dtype: z.enum(['float32', 'uint8']).default('float32'),
  /** Applied as ((pixel * scale) - mean) / std, per channel. */
  scale: z.number().default(1 / 255),
  mean: z.array(z.number()).default([0, 0, 0]),
  std: z.array(z.number()).default([1, 1, 1]),
});

export const postprocessStepSchema = z.discriminatedUnion('op', [
  z.object({ op: z.literal('softmax'), output: z.string().optional(), axis: z.number().int().default(-1) }),
  z.object({ op: z.literal('argmax'), output: z.string().optional(), axis: z.number().int().default(-1) }),
  z.object({ op: z.literal('topk'), output: z.string().optional(), k: z.number().int().positive().default(5) }),
]);

export const pipelineSchema = z.object({
  preprocess: imagePreprocessSchema.optional(),
  postprocess: z.array(postprocessStepSchema).default([]),
  /** One label per line, index = class id. */
  labels: relativePath.optional(),
});

export const testVectorsSchema = z.object({
  /** |actual - expected| <= atol + rtol * |expected|, elementwise (numpy.allclose). */
  tolerance: z.object({ atol: z.number().nonnegative(), rtol: z.number().nonnegative() }),
  cases: z.array(
    z.object({
      id: name,
      /** Tensor name → `.npy` file in the artifact. */
      inputs: z.record(z.string(), relativePath),
      outputs: z.record(z.string(), relativePath),
      /**
       * Output name → `.npy` (uint32) of flat element indices: that output's `.npy` then holds only the expected
       * values at those indices, in that order (a seeded sample, so test vectors stay bounded for big outputs).
       */
      elements: z.record(z.string(), relativePath).optional(),
    }),
  ),
});

export const fileEntrySchema = z.object({ sha256, bytes: z.number().int().nonnegative() });

export const manifestSchema = z
  .object({
    schemaVersion: z.number().int(),
    name,
    version: z.string().regex(/^[0-9A-Za-z][0-9A-Za-z.+_-]{0,63}$/, 'a version such as 1.2.0'),
    createdAt: z.iso.datetime(),
    description: z.string().optional(),
    target: targetSchema,
    /** May be empty: a model with no inputs is valid ONNX (onnx backend test_constant: one Constant node). */
    inputs: z.array(tensorSpecSchema),
    outputs: z.array(tensorSpecSchema).min(1),
    /** At least one, except in a pipeline artifact (`cascade`), whose models carry their own. */
    variants: z.array(variantSchema),
    /** "fixed": run the rank-1 variant. "device": benchmark the candidates at install and keep the fastest that passes. */
    selection: z.enum(['fixed', 'device']).default('fixed'),
    pipeline: pipelineSchema.default({ postprocess: [] }),
    testVectors: testVectorsSchema.optional(),
    /** Statistics of the compile's inputs and the fp32 outputs (runtime/monitor/baseline.ts): the drift baseline. */
    baseline: relativePath.optional(),
    producer: z.object({
      outpost: z.string(),
      onnxruntime: z.string().optional(),
      source: z.object({ file: z.string(), sha256 }).optional(),
    }),
    /** Compile report summary, as `outpost compile --json` prints it. */
    report: z.record(z.string(), z.unknown()).optional(),
    /** Every file of the artifact except manifest.json and manifest.sig. */
    files: z.record(relativePath, fileEntrySchema),
    /** Present in a pipeline artifact only: its steps, models and tensor mapping (cascade.ts, docs/pipelines.md). */
    cascade: cascadeSchema.optional(),
  })
  .refine((m) => m.cascade !== undefined || m.variants.length > 0, {
    message: 'a model artifact lists at least one variant',
    path: ['variants'],
  });

export type TensorSpec = z.infer<typeof tensorSpecSchema>;
export type Variant = z.infer<typeof variantSchema>;
export type Target = z.infer<typeof targetSchema>;
export type ImagePreprocess = z.infer<typeof imagePreprocessSchema>;
export type PostprocessStep = z.infer<typeof postprocessStepSchema>;
export type Pipeline = z.infer<typeof pipelineSchema>;
export type TestVectors = z.infer<typeof testVectorsSchema>;
export type Manifest = z.infer<typeof manifestSchema>;
export type ManifestInput = z.input<typeof manifestSchema>;
export type BackendName = z.infer<typeof backendNameSchema>;
export type Precision = z.infer<typeof precisionSchema>;
