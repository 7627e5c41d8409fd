import type { KeyObject } from 'node:crypto';
import { open, stat } from 'node:fs/promises';
import { OutpostError, fromFsError, messageOf } from '../errors.js';
import { logger } from '../log.js';
import type { Manifest, Variant } from '../artifact/manifest.js';
import { openArtifact, variantPath, type OpenedArtifact, type Verdicts } from '../artifact/index.js';
import { sha256File } from '../artifact/hash.js';
import { backends as defaultBackends, type BackendRegistry } from '../backends/index.js';
import type { BackendName, BackendSession, SessionConfig } from '../backends/types.js';
import { Model } from './model.js';
import { synthesizeManifest } from './synthesize.js';
import { bindingsFromShapes } from './validate.js';
import { warmUp } from './warmup.js';

const log = logger('runtime.load');

export interface LoadOptions {
  /** "auto" (default): by priority, native first, falling back to WASM. A named backend gets no fallback. */
  readonly backend?: BackendName | 'auto';
  /** Variant id; default: the best-ranked variant the serving backend can run. */
  readonly variant?: string;
  /** Symbol → size, e.g. { batch: 1 }. */
  readonly dims?: Readonly<Record<string, number>>;
  /** Input name → full shape; binds the symbols in it. */
  readonly shapes?: Readonly<Record<string, readonly number[]>>;
  readonly threads?: number;
  /** Warm-up runs after load (default 1; 0 to skip). */
  readonly warmup?: number;
  /** Public keys (PEM text, file paths or KeyObjects) whose artifact signatures are trusted. */
  readonly trustedKeys?: readonly (string | KeyObject)[];
  /** Refuse unsigned artifacts (default: true when trustedKeys are given). */
  readonly requireSignature?: boolean;
  /** Remembered hashes of unchanged files (an artifact directory's files are then not all re-hashed): VerifyOptions. */
  readonly verdicts?: Verdicts;
  /** Variants whose files may be absent (a device fetched only those it runs): VerifyOptions.absentVariants. */
  readonly absentVariants?: readonly string[];
  readonly ortLogLevel?: SessionConfig['ortLogLevel'];
  /** Backends to choose from; defaults to the process-wide registry (native, wasm). */
  readonly registry?: BackendRegistry;
}

type Source = { kind: 'artifact'; path: string } | { kind: 'model'; path: string };

const GZIP_MAGIC = [0x1f, 0x8b];

async function classify(path: string): Promise<Source> {
  const info = await stat(path).catch((error: unknown) => {
    throw fromFsError(error, path, 'read');
  });
  if (info.isDirectory()) return { kind: 'artifact', path };
  const head = Buffer.alloc(2);
  const handle = await open(path, 'r').catch((error: unknown) => {
    throw fromFsError(error, path, 'read');
  });
  try {
    await handle.read(head, 0, 2, 0);
  } finally {
    await handle.close();
  }
  return head[0] === GZIP_MAGIC[0] && head[1] === GZIP_MAGIC[1] ? { kind: 'artifact', path } : { kind: 'model', path };
}

/**
 * Variants of `manifest` that `backend` can run and whose files are here (not in `absent`), best rank first; just the
 * named one when `id` is given.
 */
function candidates(
  manifest: Manifest,
  backend: BackendName,
  id: string | undefined,
  absent: readonly string[],
): Variant[] {
  if (id !== undefined) {
    const variant = manifest.variants.find((v) => v.id === id);
    if (variant === undefined) {
      throw new OutpostError(
        'VARIANT_NOT_FOUND',
        `no variant "${id}"; variants: ${manifest.variants.map((v) => v.id).join(', ')}`,
        {
          details: { variant: id, available: manifest.variants.map((v) => v.id) },
        },
      );
    }
    return variant.backends.includes(backend) ? [variant] : [];
  }
  return manifest.variants
    .filter((v) => v.backends.includes(backend) && !absent.includes(v.id))
    .sort((a, b) => a.rank - b.rank);
}

interface Opened {
  manifest: Manifest | undefined;
  artifact: OpenedArtifact | undefined;
}

async function openSource(source: Source, options: LoadOptions): Promise<Opened> {
  if (source.kind === 'model') {
    // A bare model carries no signature: when signatures are required (or keys trusted), it cannot be loaded.
    if (options.requireSignature ?? (options.trustedKeys ?? []).length > 0) {
      throw new OutpostError(
        'ARTIFACT_SIGNATURE_MISSING',
        `${source.path} is a bare model, not a signed artifact, and signatures are required`,
      );
    }
    return { manifest: undefined, artifact: undefined };
  }
  const artifact = await openArtifact(source.path, {
    trustedKeys: options.trustedKeys,
    requireSignature: options.requireSignature,
    ...(options.verdicts === undefined ? {} : { verdicts: options.verdicts }),
    ...(options.absentVariants === undefined ? {} : { absentVariants: options.absentVariants }),
  });
  return { manifest: artifact.manifest, artifact };
}

/**
 * Loads an artifact directory, an artifact `.tar.gz`, or a plain `.onnx`/`.ort` file, verified first (artifacts),
 * into the best backend that can serve it: native when it loads and creates the session, else WASM, with the reason
 * recorded in `model.fallbackReason`.
 */
export async function loadModel(path: string, options: LoadOptions = {}): Promise<Model> {
  const started = performance.now();
  const source = await classify(path);
  const { manifest, artifact } = await openSource(source, options);
  try {
    if (manifest?.cascade !== undefined) {
      throw new OutpostError(
        'INVALID_ARGUMENT',
        `${path} is a pipeline artifact (steps: ${manifest.cascade.steps.map((s) => s.id).join(', ')}): open it with openPipeline()`,
        { details: { path } },
      );
    }
    const registry = options.registry ?? defaultBackends();
    const order: readonly BackendName[] =
      options.backend === undefined || options.backend === 'auto' ? registry.names() : [options.backend];
    const failures: string[] = [];
    for (const name of order) {
      const backend = await registry.get(name).catch((error: unknown) => {
        failures.push(`${name}: ${messageOf(error)}`);
        return undefined;
      });
      if (backend === undefined) continue;
      const variants =
        manifest === undefined
          ? [undefined]
          : candidates(manifest, name, options.variant, artifact?.absentVariants ?? []);
      if (variants.length === 0) failures.push(`${name}: no variant of this artifact lists the ${name} backend`);
      for (const variant of variants) {
        const file = variant === undefined || artifact === undefined ? path : variantPath(artifact, variant.id);
        const config: SessionConfig = {
          threads: options.threads,
          executionProviders: variant?.executionProviders,
          ortLogLevel: options.ortLogLevel,
        };
        let session: BackendSession;
        try {
          session = await backend.createSession(file, config);
        } catch (error) {
          failures.push(`${name}${variant ? ` (${variant.id})` : ''}: ${messageOf(error)}`);
          continue;
        }
        return await finish(session, variant, file, failures);
      }
    }
    throw noBackend(path, failures);
  } catch (error) {
    await artifact?.dispose();
    throw error;
  }

  async function finish(
    session: BackendSession,
    variant: Variant | undefined,
    file: string,
    failures: string[],
  ): Promise<Model> {
    try {
      let resolved = manifest;
      if (resolved === undefined) {
        const digest = await sha256File(path);
        resolved = synthesizeManifest(path, session, digest.sha256, digest.bytes);
      }
      const [first] = resolved.variants;
      const chosen = variant ?? first;
      if (chosen === undefined)
        throw new OutpostError('ARTIFACT_MANIFEST_INVALID', `${path}: manifest lists no variants`);
      const bindings = { ...(options.dims ?? {}), ...bindingsFromShapes(resolved.inputs, options.shapes ?? {}) };
      const model = new Model({
        manifest: resolved,
        synthesized: manifest === undefined,
        variant: chosen,
        file,
        artifactDir: artifact?.dir,
        session,
        fallbackReason: failures.length > 0 ? failures.join('; ') : undefined,
        bindings,
        loadMs: performance.now() - started,
        dispose: artifact === undefined ? undefined : () => artifact.dispose(),
      });
      if (model.fallbackReason !== undefined) {
        log.warn(
          { model: model.name, backend: model.backend, reason: model.fallbackReason },
          'serving from fallback backend',
        );
      }
      await warmUp(model, options.warmup ?? 1, bindings);
      return model;
    } catch (error) {
      await session.release();
      throw error;
    }
  }
}

function noBackend(path: string, failures: readonly string[]): OutpostError {
  const external = failures.find((f) => /external data path does not exist|failed to load external data/i.test(f));
  if (external !== undefined) {
    return new OutpostError('MODEL_EXTERNAL_DATA_MISSING', `${path}: an external data file is missing (${external})`, {
      details: { path, failures },
    });
  }
  // ONNX Runtime's parse errors mean the file itself is bad, whichever backend read it.
  const parse = failures.find((f) => /protobuf parsing failed|INVALID_PROTOBUF|failed to load model|no graph/i.test(f));
  if (parse !== undefined) {
    return new OutpostError('MODEL_INVALID', `${path} is not a loadable ONNX model (${parse})`, {
      details: { path, failures },
    });
  }
  return new OutpostError('SESSION_CREATE_FAILED', `no backend could load ${path}: ${failures.join('; ')}`, {
    details: { path, failures },
  });
}
