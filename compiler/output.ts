import { stat } from 'node:fs/promises';
import { basename } from 'node:path';
import {
  writeArtifact,
  type ArtifactFileSource,
  type ManifestDraft,
  type Pipeline,
  type TensorSpec,
} from '../runtime/artifact/index.js';
import type { TensorValue } from '../runtime/backends/index.js';
import { OutpostError } from '../runtime/errors.js';
import { BASELINE_FILE, type Baseline } from '../runtime/monitor/index.js';
import { encodeNpy } from '../runtime/tensor/index.js';
import { OUTPOST_VERSION } from '../runtime/version.js';
import type { TargetProfile } from './targets/types.js';
import { jsonSafe, type CompileReport } from './report.js';
import { boundTestVectors, testVectorBudget, type TestVector } from './test-vector-budget.js';

/** A variant as it is shipped: its file in the work directory and its manifest fields. */
export interface ShippedVariant {
  readonly id: string;
  readonly path: string;
  readonly format: 'onnx' | 'ort';
  readonly precision: ManifestDraft['variants'][number]['precision'];
  readonly backends: ManifestDraft['variants'][number]['backends'];
  readonly rank: number;
  readonly accuracy: Record<string, number>;
  readonly accuracyWaived: boolean;
  /** Self-test tolerance for this variant's outputs against the fp32 original's. */
  readonly tolerance: { atol: number; rtol: number };
}

export interface ArtifactPlan {
  readonly out: string;
  readonly name: string;
  readonly version: string;
  readonly target: TargetProfile;
  readonly inputs: readonly TensorSpec[];
  readonly outputs: readonly TensorSpec[];
  readonly variants: readonly ShippedVariant[];
  readonly selection: 'fixed' | 'device';
  readonly pipeline: Pipeline;
  readonly labels?: string;
  /** Held-out samples with the fp32 original's outputs: the device's self-test (bounded when written). */
  readonly vectors: readonly TestVector[];
  /** The drift baseline (compiler/baseline.ts), shipped as baseline.json. */
  readonly baseline?: Baseline;
  readonly source: { file: string; sha256: string };
  readonly report: Omit<CompileReport, 'output' | 'seconds'>;
  readonly signingKey?: string;
  readonly overwrite: boolean;
}

function npy(tensor: { data: TensorValue['data']; dims: readonly number[] }, dtype: TensorValue['type']): Uint8Array {
  if (Array.isArray(tensor.data)) throw new OutpostError('INTERNAL', 'string tensors cannot be test vectors (.npy)');
  return encodeNpy({ dtype, shape: [...tensor.dims], data: tensor.data });
}

/** Writes the artifact (atomically, via a temporary directory renamed into place) and returns its manifest. */
export async function writeCompiledArtifact(plan: ArtifactPlan) {
  const files: ArtifactFileSource[] = [];
  const variants = plan.variants.map((v) => {
    const file = `variants/${plan.name}.${v.id}.${v.format}`;
    files.push({ path: file, from: v.path });
    return {
      id: v.id,
      file,
      precision: v.precision,
      format: v.format,
      backends: v.backends,
      rank: v.rank,
      executionProviders: [...plan.target.executionProviders],
      accuracy: v.accuracy,
      tolerance: v.tolerance,
      ...(v.accuracyWaived ? { accuracyWaived: true } : {}),
    };
  });
  const sizes = await Promise.all(plan.variants.map(async (v) => (await stat(v.path)).size));
  const vectors = boundTestVectors(plan.vectors, testVectorBudget(sizes));
  const cases = vectors.map((vector, i) => {
    const id = `case${i}`;
    const entry = (which: 'inputs' | 'outputs' | 'elements', name: string) =>
      `test-vectors/${id}/${which}/${name.replace(/[^A-Za-z0-9._-]/g, '_')}.npy`;
    const inputs: Record<string, string> = {};
    const outputs: Record<string, string> = {};
    for (const spec of plan.inputs) {
      const t = vector.feeds[spec.name];
      if (t === undefined) continue;
      const path = entry('inputs', spec.name);
      inputs[spec.name] = path;
      files.push({ path, from: npy(t, spec.dtype) });
    }
    for (const [name, t] of Object.entries(vector.outputs)) {
      const path = entry('outputs', name);
      outputs[name] = path;
      files.push({ path, from: npy(t, t.type) });
    }
    const elements: Record<string, string> = {};
    for (const [name, indices] of Object.entries(vector.elements ?? {})) {
      const path = entry('elements', name);
      elements[name] = path;
      files.push({ path, from: npy({ data: indices, dims: [indices.length] }, 'uint32') });
    }
    return { id, inputs, outputs, ...(Object.keys(elements).length === 0 ? {} : { elements }) };
  });
  // Contents, not a path: a string `from` names a file to copy (runtime/artifact/write.ts).
  if (plan.labels !== undefined) files.push({ path: 'labels.txt', from: Buffer.from(plan.labels, 'utf8') });
  if (plan.baseline !== undefined)
    files.push({ path: BASELINE_FILE, from: Buffer.from(JSON.stringify(plan.baseline)) });
  const worst = plan.variants.reduce(
    (t, v) => ({ atol: Math.max(t.atol, v.tolerance.atol), rtol: Math.max(t.rtol, v.tolerance.rtol) }),
    { atol: 0, rtol: 0 },
  );
  const manifest: ManifestDraft = {
    name: plan.name,
    version: plan.version,
    target: {
      profile: plan.target.key,
      arch: plan.target.arch,
      cpu: plan.target.cpu,
      features: [...plan.target.features],
      ...(plan.target.accelerator === undefined ? {} : { accelerator: plan.target.accelerator }),
    },
    inputs: plan.inputs.map((s) => ({ ...s, shape: [...s.shape] })),
    outputs: plan.outputs.map((s) => ({ ...s, shape: [...s.shape] })),
    variants,
    selection: plan.selection,
    pipeline: { ...plan.pipeline, ...(plan.labels === undefined ? {} : { labels: 'labels.txt' }) },
    ...(cases.length === 0 ? {} : { testVectors: { tolerance: worst, cases } }),
    ...(plan.baseline === undefined ? {} : { baseline: BASELINE_FILE }),
    producer: {
      outpost: OUTPOST_VERSION,
      onnxruntime: await onnxruntimeVersion(),
      source: { file: basename(plan.source.file), sha256: plan.source.sha256 },
    },
    report: jsonSafe({ ...plan.report }),
  };
  return writeArtifact(plan.out, {
    manifest,
    files,
    overwrite: plan.overwrite,
    ...(plan.signingKey === undefined ? {} : { signingKey: plan.signingKey }),
  });
}

async function onnxruntimeVersion(): Promise<string | undefined> {
  const ort = await import('onnxruntime-node');
  return ort.env.versions.node;
}
