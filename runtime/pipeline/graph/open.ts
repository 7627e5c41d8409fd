import type { KeyObject } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { OutpostError } from '../../errors.js';
import { MANIFEST_FILE } from '../../artifact/manifest.js';
import {
  artifactFilePath,
  openArtifact,
  variantsOfBundled,
  type OpenedArtifact,
  type Verdicts,
} from '../../artifact/index.js';
import type { BackendName } from '../../backends/types.js';
import { loadModel } from '../../model/load.js';
import type { Model } from '../../model/model.js';
import type { TransformRun } from '../transforms/index.js';
import { Pipeline } from './pipeline.js';
import { planPipeline, type ModelSignature } from './plan.js';

export interface OpenPipelineOptions {
  readonly backend?: BackendName | 'auto';
  readonly threads?: number;
  /** Public keys whose signatures are trusted (the pipeline artifact's; bundled models are covered by its hashes). */
  readonly trustedKeys?: readonly (string | KeyObject)[];
  readonly requireSignature?: boolean;
  readonly verdicts?: Verdicts;
  /**
   * Variants of bundled models this device did not fetch, as `<model key>/<variant id>` (the `files` stream layout,
   * docs/delivery.md): their files may be absent (VerifyOptions.absentVariants), and each model loads from the rest.
   */
  readonly absentVariants?: readonly string[];
  /** A model the pipeline references by name and pinned version (not bundled) → its installed artifact's path. */
  readonly resolveModel?: (name: string, version: string) => string | undefined;
}

/**
 * Opens a pipeline artifact (directory or `.tar.gz`): verified like any artifact (signature, every hash, including
 * every file of the bundled models), then each model loaded (bundled ones from their sub-directory, referenced ones
 * through `resolveModel`), the plan validated against the models actually loaded, and each transform bound to its
 * parameters. Nothing is left open when any of it fails.
 */
export async function openPipeline(path: string, options: OpenPipelineOptions = {}): Promise<Pipeline> {
  const artifact = await openArtifact(path, {
    ...(options.trustedKeys === undefined ? {} : { trustedKeys: options.trustedKeys }),
    ...(options.requireSignature === undefined ? {} : { requireSignature: options.requireSignature }),
    ...(options.verdicts === undefined ? {} : { verdicts: options.verdicts }),
    ...(options.absentVariants === undefined ? {} : { absentVariants: options.absentVariants }),
  });
  const models: Record<string, Model> = {};
  try {
    const cascade = artifact.manifest.cascade;
    if (cascade === undefined) {
      throw new OutpostError(
        'INVALID_ARGUMENT',
        `${path} is a model artifact, not a pipeline (its manifest has no "cascade")`,
      );
    }
    for (const [key, source] of Object.entries(cascade.models)) {
      const dir =
        'dir' in source
          ? dirname(artifactFilePath(artifact, `${source.dir}/${MANIFEST_FILE}`))
          : options.resolveModel?.(source.name, source.version);
      if (dir === undefined) {
        throw new OutpostError(
          'PIPELINE_MODEL_MISSING',
          `pipeline ${artifact.manifest.name} references model "${key}" as ${'name' in source ? `${source.name}@${source.version}` : key}, which is not installed here`,
          { details: { model: key, ...source } },
        );
      }
      const absent = 'dir' in source ? variantsOfBundled(artifact.absentVariants ?? [], key) : [];
      models[key] = await loadModel(dir, {
        warmup: 0,
        ...(absent.length === 0 ? {} : { absentVariants: absent }),
        ...(options.backend === undefined ? {} : { backend: options.backend }),
        ...(options.threads === undefined ? {} : { threads: options.threads }),
      });
    }
    const signatures: Record<string, ModelSignature> = Object.fromEntries(
      Object.entries(models).map(([key, m]) => [key, { inputs: m.inputs, outputs: m.outputs }]),
    );
    const plan = planPipeline(cascade, artifact.manifest.inputs, signatures);
    const context = { file: (p: string) => artifactFilePath(artifact, p) };
    const transforms: Record<string, TransformRun> = {};
    for (const planned of plan.steps) {
      if (planned.kind === 'transform')
        transforms[planned.step.id] = await planned.transform.prepare(planned.params as never, context);
    }
    return new Pipeline({
      manifest: artifact.manifest,
      dir: artifact.dir,
      plan,
      models,
      transforms,
      dispose: () => artifact.dispose(),
    });
  } catch (error) {
    await Promise.all(Object.values(models).map((m) => m.release()));
    await artifact.dispose();
    throw error;
  }
}

/**
 * Whether `path` is a pipeline artifact, from its manifest alone (not verified: a dispatch hint for the CLI and the
 * server, which then open it with full verification). Archives are opened (and verified) to read it.
 */
export async function isPipelineArtifact(path: string): Promise<boolean> {
  const info = await stat(path).catch(() => undefined);
  if (info === undefined) return false;
  if (info.isDirectory()) {
    const text = await readFile(join(path, MANIFEST_FILE), 'utf8').catch(() => undefined);
    if (text === undefined) return false;
    try {
      const raw: unknown = JSON.parse(text);
      return typeof raw === 'object' && raw !== null && 'cascade' in raw;
    } catch {
      return false;
    }
  }
  if (!/\.(tar\.gz|tgz)$/.test(path)) return false;
  let opened: OpenedArtifact | undefined;
  try {
    opened = await openArtifact(path);
    return opened.manifest.cascade !== undefined;
  } catch {
    return false;
  } finally {
    await opened?.dispose();
  }
}
