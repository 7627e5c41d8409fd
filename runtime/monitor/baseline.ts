import * as z from 'zod';
import type { DType, TensorData } from '../tensor/dtype.js';
import { elementReader, featureLayout, visitFeatures, type FeatureLayout } from './features.js';
import { summarize } from './statistics.js';

/**
 * `baseline.json`: statistics of the data a model was compiled against (its calibration inputs and the fp32
 * original's outputs on them), shipped in the artifact and covered by the manifest's hashes like every file. The
 * device compares live traffic with it (SageMaker Model Monitor's baseline `statistics.json`, on the device).
 */
export const BASELINE_FILE = 'baseline.json';
export const BASELINE_SCHEMA_VERSION = 1;

/** Values kept per feature per sample while summarising (strided), and in all (memory bound of a compile). */
const BASELINE_VALUES_PER_FEATURE = 4096;
const BASELINE_VALUES_MAX = 262_144;
/** A classifier output of at most this many classes also gets its class distribution. */
export const MAX_CLASSES = 1000;

const histogramSchema = z
  .object({ edges: z.array(z.number()), counts: z.array(z.number().nonnegative()) })
  .refine((h) => h.counts.length === h.edges.length + 1, { message: 'counts must have one entry more than edges' })
  .refine((h) => h.edges.every((e, i) => i === 0 || e > (h.edges[i - 1] ?? -Infinity)), {
    message: 'edges must be strictly ascending',
  });

export const featureBaselineSchema = z.object({
  tensor: z.string().min(1),
  /** `image[c0]`, `x[3]`, or the tensor's name (features.ts). */
  feature: z.string().min(1),
  kind: z.enum(['channel', 'element', 'tensor']),
  count: z.number().int().nonnegative(),
  mean: z.number(),
  std: z.number().nonnegative(),
  min: z.number(),
  max: z.number(),
  quantiles: z.record(z.string(), z.number()),
  histogram: histogramSchema,
});

export const baselineSchema = z.object({
  schemaVersion: z.literal(BASELINE_SCHEMA_VERSION),
  /** Where the statistics come from: "calibration", "synthetic", or the `--baseline` directory's name. */
  source: z.string(),
  samples: z.number().int().nonnegative(),
  inputs: z.array(featureBaselineSchema),
  outputs: z.array(featureBaselineSchema),
  /** Argmax distribution of classifier outputs: counts per class id. */
  classes: z.array(z.object({ output: z.string().min(1), counts: z.array(z.number().nonnegative()).min(2) })),
});

export type FeatureBaseline = z.infer<typeof featureBaselineSchema>;
export type Baseline = z.infer<typeof baselineSchema>;

/** A tensor as both sides see it (feeds, ONNX Runtime outputs, decoded `.npy`). */
export interface SampleTensor {
  readonly type?: DType;
  readonly dims: readonly number[];
  readonly data: TensorData;
}

export interface BaselineOptions {
  readonly source: string;
  /** Image inputs' layout from the artifact's pre-processing (else inferred from the dims). */
  readonly layout?: 'NCHW' | 'NHWC';
}

/** Summarises samples (inputs, and the reference model's outputs on them, index for index). */
export function computeBaseline(
  inputs: readonly Readonly<Record<string, SampleTensor>>[],
  outputs: readonly Readonly<Record<string, SampleTensor>>[],
  options: BaselineOptions,
): Baseline {
  return {
    schemaVersion: BASELINE_SCHEMA_VERSION,
    source: options.source,
    samples: inputs.length,
    inputs: summarizeTensors(inputs, options.layout),
    outputs: summarizeTensors(outputs, undefined),
    classes: classDistributions(outputs),
  };
}

function summarizeTensors(
  samples: readonly Readonly<Record<string, SampleTensor>>[],
  layout: 'NCHW' | 'NHWC' | undefined,
): FeatureBaseline[] {
  const collected = new Map<string, { layout: FeatureLayout; values: number[][] }>();
  for (const sample of samples) {
    for (const [name, t] of Object.entries(sample)) {
      if (Array.isArray(t.data)) continue; // strings have no distribution to compare
      const found = collected.get(name);
      const entry = found ?? { layout: featureLayout(name, t.dims, layout), values: [] };
      if (found === undefined) {
        entry.values = entry.layout.names.map(() => []);
        collected.set(name, entry);
      } else if (featureLayout(name, t.dims, layout).names.length !== entry.layout.names.length) continue;
      const read = elementReader(t.type, t.data);
      visitFeatures(
        entry.layout,
        t.dims,
        read,
        t.data.length,
        (f, v) => {
          const values = entry.values[f];
          if (values !== undefined && values.length < BASELINE_VALUES_MAX) values.push(v);
        },
        BASELINE_VALUES_PER_FEATURE,
      );
    }
  }
  return [...collected.values()].flatMap(({ layout: l, values }) =>
    l.names.map((feature, i) => ({
      tensor: l.tensor,
      feature,
      kind: l.kind,
      ...summarize(Float64Array.from(values[i] ?? [])),
    })),
  );
}

/** Whether an output of these dims is a classifier's scores: [batch, classes] with 2..MAX_CLASSES classes. */
export function classCount(dims: readonly number[]): number | undefined {
  const classes = dims[dims.length - 1];
  return dims.length === 2 && classes !== undefined && classes >= 2 && classes <= MAX_CLASSES ? classes : undefined;
}

/** Adds the argmax of each row of `t` to `counts` (a row of NaN counts nowhere). */
export function countClasses(t: SampleTensor, classes: number, counts: Float64Array | number[]): void {
  if (Array.isArray(t.data)) return;
  const read = elementReader(t.type, t.data);
  for (let start = 0; start + classes <= t.data.length; start += classes) {
    let best = -1;
    let bestValue = -Infinity;
    for (let c = 0; c < classes; c++) {
      const v = read(start + c);
      if (v > bestValue) {
        best = c;
        bestValue = v;
      }
    }
    if (best >= 0) counts[best] = (counts[best] ?? 0) + 1;
  }
}

function classDistributions(samples: readonly Readonly<Record<string, SampleTensor>>[]): Baseline['classes'] {
  const byOutput = new Map<string, number[]>();
  for (const sample of samples) {
    for (const [name, t] of Object.entries(sample)) {
      const classes = classCount(t.dims);
      if (classes === undefined) continue;
      const counts = byOutput.get(name) ?? new Array<number>(classes).fill(0);
      if (counts.length !== classes) continue;
      byOutput.set(name, counts);
      countClasses(t, classes, counts);
    }
  }
  return [...byOutput].map(([output, counts]) => ({ output, counts }));
}
