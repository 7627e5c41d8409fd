import { access, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { OutpostError } from '../../runtime/errors.js';
import { OUTPOST_VERSION } from '../../runtime/version.js';
import { artifact } from '../../runtime/index.js';
import { onnxruntimeVersion } from '../../runtime/host/index.js';
import { wrapBareModel } from '../../runtime/model/index.js';
import { planPipeline, type ModelSignature } from '../../runtime/pipeline/index.js';
import { compile } from '../compile.js';
import { readPipelineSource, type ModelSource } from './source.js';
import { recordVectors, type VectorSamples } from './vectors.js';

export interface BuildPipelineOptions {
  /** The pipeline.json. */
  readonly source: string;
  readonly target: string;
  /** Artifact directory, or a path ending in .tar.gz for a packed one. */
  readonly output: string;
  readonly signKey?: string;
  readonly overwrite?: boolean;
  /** Where referenced (not bundled) models are installed: `<store>/<name>/<version>/`, as on a device. */
  readonly store?: string;
  /**
   * Sample inputs recorded as the artifact's test vectors, one case each (input name → file, relative to the
   * working directory); they replace pipeline.json's `testVectors.cases`.
   */
  readonly testInputs?: readonly Readonly<Record<string, string>>[];
  /** One line per phase ("compile det", "bundle rec", "write"). */
  readonly onProgress?: (stage: string) => void;
}

export interface BuiltModel {
  readonly key: string;
  readonly how: 'compiled' | 'bundled' | 'artifact' | 'referenced';
  readonly variants: readonly string[];
}

export interface PipelineBuildReport {
  readonly output: string;
  readonly name: string;
  readonly version: string;
  readonly models: readonly BuiltModel[];
  readonly steps: readonly string[];
  /** End-to-end test vectors recorded (cases). */
  readonly testVectors: number;
  readonly outputs: readonly { name: string; dtype: string; shape: readonly (number | string)[] }[];
  readonly signer?: string;
  readonly seconds: number;
}

interface Prepared {
  readonly built: BuiltModel;
  readonly signature: ModelSignature;
  /** A verified artifact directory to bundle, or undefined for a referenced model. */
  readonly dir?: artifact.VerifiedArtifact;
  readonly target?: artifact.Target;
}

/**
 * `outpost pipeline build`: pipeline.json → a pipeline artifact (docs/pipelines.md). Each model is compiled for the
 * target like `outpost compile` (when it asks to be), bundled as it is, taken from a compiled artifact, or
 * referenced by name@version; then the whole definition is validated against the models' real inputs and outputs
 * (and every transform bound once, so a missing key file fails here), and one artifact written — the bundled
 * models' files among its hashed files, signed when a key is given.
 */
export async function buildPipeline(options: BuildPipelineOptions): Promise<PipelineBuildReport> {
  const started = performance.now();
  const base = dirname(resolve(options.source));
  const source = await readPipelineSource(options.source);
  const work = await mkdtemp(join(tmpdir(), 'outpost-pipeline-'));
  try {
    const prepared: Record<string, Prepared> = {};
    for (const [key, model] of Object.entries(source.models)) {
      options.onProgress?.(`model ${key}`);
      prepared[key] = await prepareModel(key, model, { base, work, options });
    }
    const cascadeModels = Object.fromEntries(
      Object.entries(source.models).map(([key, m]) => [
        key,
        'name' in m ? { name: m.name, version: m.version } : { dir: `models/${key}` },
      ]),
    );
    const cascade = artifact.cascadeSchema.parse({
      models: cascadeModels,
      steps: source.steps,
      outputs: source.outputs,
    });
    const signatures = Object.fromEntries(Object.entries(prepared).map(([k, p]) => [k, p.signature]));
    const plan = planPipeline(cascade, source.inputs, signatures);
    const files = new Map<string, string>();
    for (const [path, from] of Object.entries(source.files)) files.set(path, resolve(base, from));
    for (const step of plan.steps) {
      if (step.kind !== 'transform') continue;
      await step.transform.prepare(step.params as never, {
        file: (path) => {
          const from = files.get(path);
          if (from === undefined) {
            throw new OutpostError(
              'PIPELINE_INVALID',
              `step "${step.step.id}" (${step.transform.op}) reads "${path}", which pipeline.json's "files" does not list`,
              {
                details: { step: step.step.id, file: path, files: [...files.keys()] },
              },
            );
          }
          return from;
        },
      });
    }
    const bundled: artifact.ArtifactFileSource[] = [...files].map(([path, from]) => ({ path, from }));
    for (const [key, p] of Object.entries(prepared)) {
      if (p.dir === undefined) continue;
      const paths = [artifact.MANIFEST_FILE, ...Object.keys(p.dir.manifest.files)];
      const signed = await access(join(p.dir.dir, artifact.SIGNATURE_FILE)).then(
        () => true,
        () => false,
      );
      if (signed) paths.push(artifact.SIGNATURE_FILE);
      for (const path of paths) bundled.push({ path: `models/${key}/${path}`, from: join(p.dir.dir, path) });
    }
    const target = Object.values(prepared).find((p) => p.target !== undefined && p.target.arch !== 'any')?.target ?? {
      profile: 'any',
      arch: 'any' as const,
      features: [],
    };
    const manifest: artifact.ManifestDraft = {
      name: source.name,
      version: source.version,
      ...(source.description === undefined ? {} : { description: source.description }),
      target,
      inputs: source.inputs,
      outputs: [...plan.outputs],
      variants: [],
      cascade,
      producer: { outpost: OUTPOST_VERSION, onnxruntime: onnxruntimeVersion() },
    };
    const samples: VectorSamples | undefined =
      options.testInputs !== undefined && options.testInputs.length > 0
        ? { cases: options.testInputs, tolerance: source.testVectors?.tolerance, base: process.cwd() }
        : source.testVectors === undefined
          ? undefined
          : { ...source.testVectors, base };
    let vectors = 0;
    if (samples !== undefined) {
      // The samples run through the artifact as a device will open it: a draft of it, without the vectors.
      options.onProgress?.('test vectors');
      const draft = join(work, 'draft');
      await artifact.writeArtifact(draft, { manifest, files: bundled });
      const recorded = await recordVectors(draft, source.inputs, samples);
      bundled.push(...recorded.files);
      manifest.testVectors = recorded.testVectors;
      vectors = recorded.testVectors.cases.length;
      await rm(draft, { recursive: true, force: true });
    }
    options.onProgress?.('write');
    const packed = options.output.endsWith('.tar.gz') || options.output.endsWith('.tgz');
    const dir = packed ? join(work, 'pipeline') : options.output;
    const written = await artifact.writeArtifact(dir, {
      manifest,
      files: bundled,
      ...(options.signKey === undefined ? {} : { signingKey: options.signKey }),
      ...(options.overwrite === true && !packed ? { overwrite: true } : {}),
    });
    if (packed) await artifact.packArtifact(dir, options.output);
    return {
      output: options.output,
      name: source.name,
      version: source.version,
      models: Object.values(prepared).map((p) => p.built),
      steps: plan.steps.map((s) => s.step.id),
      testVectors: vectors,
      outputs: plan.outputs,
      ...(written.signer === undefined ? {} : { signer: written.signer }),
      seconds: (performance.now() - started) / 1000,
    };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

async function prepareModel(
  key: string,
  model: ModelSource,
  env: { base: string; work: string; options: BuildPipelineOptions },
): Promise<Prepared> {
  const { base, work, options } = env;
  const missing = (what: string) =>
    new OutpostError('PIPELINE_MODEL_MISSING', `model "${key}": ${what} does not exist`, {
      details: { model: key, what },
    });
  const exists = (path: string) =>
    access(path).then(
      () => true,
      () => false,
    );
  let dir: string;
  let how: BuiltModel['how'];
  if ('name' in model) {
    dir = join(resolve(options.store ?? '.'), model.name, model.version);
    if (options.store === undefined || !(await exists(dir))) {
      throw missing(
        `the referenced artifact ${model.name}@${model.version} (looked in ${options.store ?? 'no --store'})`,
      );
    }
    how = 'referenced';
  } else if ('artifact' in model) {
    dir = resolve(base, model.artifact);
    if (!(await exists(dir))) throw missing(dir);
    how = 'artifact';
  } else {
    const file = resolve(base, model.file);
    if (!(await exists(file))) throw missing(file);
    dir = join(work, key);
    if (model.compile === undefined) {
      await wrapBareModel(file, dir);
      how = 'bundled';
    } else {
      const c = model.compile;
      await compile({
        model: file,
        target: options.target,
        output: dir,
        precision: c.precision,
        name: key,
        ...(c.inputShape === undefined ? {} : { inputShapes: c.inputShape }),
        ...(c.calibration === undefined
          ? {}
          : { calibration: c.calibration === 'synthetic' ? 'synthetic' : resolve(base, c.calibration) }),
        ...(c.preprocess === undefined ? {} : { preprocess: c.preprocess }),
      });
      how = 'compiled';
    }
  }
  const opened = await artifact.openArtifact(dir);
  if (opened.manifest.cascade !== undefined) {
    await opened.dispose();
    throw new OutpostError(
      'PIPELINE_INVALID',
      `model "${key}" (${dir}) is itself a pipeline; a step runs a model artifact`,
      {
        details: { model: key },
      },
    );
  }
  const signature = { inputs: opened.manifest.inputs, outputs: opened.manifest.outputs };
  const built: BuiltModel = {
    key,
    how,
    variants: opened.manifest.variants.map((v) => `${v.id} (${v.precision}, ${v.format})`),
  };
  if (how === 'referenced') {
    await opened.dispose();
    return { built, signature };
  }
  return { built, signature, dir: opened, target: opened.manifest.target };
}
