import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  bundledModels,
  parseManifestBytes,
  qualifiedVariant,
  variantFiles,
  type BackendName,
  type Manifest,
} from '../runtime/artifact/index.js';
import { OutpostError, fromFsError, isOutpostError } from '../runtime/errors.js';
import { filesFor, rankedVariants } from './delivery-check.js';

/*
 * What a `files`-layout device fetches of an artifact it accepted (delivery-check.ts), one decision for the agent
 * and the simulator's devices (docs/delivery.md, "What a device fetches"):
 *
 *   model artifact   the first `count` of its ranked variants (rankedVariants: the backend, then rank), plus every
 *                    shared file
 *   pipeline         its bundled models' manifest.json first (small, each checked against the signed pipeline
 *                    manifest's sha256 as it arrives), then, per bundled model, its rank-1 variant by the same
 *                    rankedVariants, plus every other file of the pipeline (transforms' files, test vectors, the
 *                    bundled models' own shared files). One variant per model: openPipeline loads each bundled model's
 *                    best-ranked variant and does not benchmark, so a second one would never run.
 *
 * The choice is a list of variant ids (a pipeline's qualified, `det/int8`), kept in the deployment state: a restart
 * does not choose again.
 */

export interface FetchChoiceOptions {
  readonly backend: BackendName | 'auto';
  /** How many of a model artifact's ranked variants are fetched (the agent's `benchmarkVariants`). */
  readonly count: number;
  /** A choice made before (a restart, a self-test fallback): kept. */
  readonly chosen?: readonly string[] | undefined;
  /** Fetches artifact paths into `filesDir`, each whole and equal to the signed manifest's sha256. */
  readonly fetch: (paths: readonly string[]) => Promise<void>;
  readonly filesDir: string;
}

export interface FetchChoice {
  readonly variants: readonly string[];
  /** Every variant this device may run, best first (a model artifact's fallbacks); a pipeline's: the chosen. */
  readonly ranked: readonly string[];
  readonly paths: readonly string[];
}

export async function chooseFetch(manifest: Manifest, options: FetchChoiceOptions): Promise<FetchChoice> {
  if (manifest.cascade === undefined) {
    const ranked = rankedVariants(manifest, options.backend);
    if (ranked.length === 0) throw noVariant(`${manifest.name}@${manifest.version}`, options.backend, manifest);
    const variants = options.chosen ?? ranked.slice(0, options.count);
    return { variants, ranked, paths: filesFor(manifest, variants) };
  }
  await options.fetch(bundledModels(manifest).map((m) => m.manifestPath));
  const bundled = await readBundledManifests(options.filesDir, manifest);
  const best = [...bundled].map(([key, model]) => {
    const [first] = rankedVariants(model, options.backend);
    if (first === undefined) throw noVariant(`${manifest.name}'s bundled model "${key}"`, options.backend, model);
    return qualifiedVariant(key, first);
  });
  const variants = heldVariants(manifest, bundled, options.chosen ?? best);
  return { variants, ranked: variants, paths: filesFor(manifest, variants, bundled) };
}

/**
 * A pipeline's deployment recorded by an agent before this choice existed holds `variants: []` and fetched every
 * file: that stays every variant. Anything else is what it says.
 */
export function heldVariants(
  manifest: Manifest,
  bundled: ReadonlyMap<string, Manifest>,
  variants: readonly string[],
): readonly string[] {
  if (manifest.cascade === undefined || variants.length > 0) return variants;
  return variantFiles(manifest, bundled).map((v) => v.id);
}

/**
 * The manifests of a pipeline's bundled models among the files in `filesDir` (fetched and hashed already, or an
 * artifact directory), by key; empty for a model artifact.
 */
export async function readBundledManifests(filesDir: string, manifest: Manifest): Promise<Map<string, Manifest>> {
  const read = new Map<string, Manifest>();
  for (const model of bundledModels(manifest)) {
    const path = join(filesDir, model.manifestPath);
    const bytes = await readFile(path).catch((error: unknown) => {
      throw isOutpostError(error) ? error : fromFsError(error, path, 'read');
    });
    read.set(model.key, parseManifestBytes(bytes).manifest);
  }
  return read;
}

function noVariant(what: string, backend: BackendName | 'auto', manifest: Manifest): OutpostError {
  return new OutpostError('VARIANT_NOT_FOUND', `no variant of ${what} lists the ${backend} backend this device uses`, {
    details: { backend, variants: manifest.variants.map((v) => v.id) },
  });
}
