import { MANIFEST_FILE, type Manifest } from './manifest.js';

/*
 * Variants inside an artifact, for a device that holds only some of them (the `files` stream layout,
 * docs/delivery.md). A model artifact's variants are its own (`fp32`, `int8`); a pipeline artifact has none of its
 * own, and each model bundled in a sub-directory has its variants, named here `<model key>/<variant id>` (`det/int8`):
 * the key is the pipeline's `cascade.models` key, neither part contains a "/". One list of variant files serves the
 * device's choice of what to fetch, the verification of what it holds, and the loads of what it runs.
 */

/** A variant a device may hold or lack: its id (qualified for a bundled model) and its file's artifact path. */
export interface VariantFile {
  readonly id: string;
  readonly file: string;
  /** The bundled model's key in `cascade.models`; undefined for a model artifact's own variant. */
  readonly model?: string;
}

/** A bundled model of a pipeline: its key and the sub-directory holding its complete artifact. */
export interface BundledModel {
  readonly key: string;
  readonly dir: string;
  /** `<dir>/manifest.json`, one of the pipeline's hashed files. */
  readonly manifestPath: string;
}

/** The pipeline's bundled models (referenced ones live elsewhere on the device); [] for a model artifact. */
export function bundledModels(manifest: Manifest): BundledModel[] {
  return Object.entries(manifest.cascade?.models ?? {}).flatMap(([key, source]) =>
    'dir' in source ? [{ key, dir: source.dir, manifestPath: `${source.dir}/${MANIFEST_FILE}` }] : [],
  );
}

export const qualifiedVariant = (model: string, id: string): string => `${model}/${id}`;

/** The bundled model `model`'s own ids among qualified `ids` (`det/fp32` → `fp32` for `det`). */
export function variantsOfBundled(ids: readonly string[], model: string): string[] {
  const prefix = `${model}/`;
  return ids.filter((id) => id.startsWith(prefix)).map((id) => id.slice(prefix.length));
}

/**
 * Every variant of `manifest` with its file: a model artifact's own, or, for a pipeline, each bundled model's (from
 * `bundled`, its manifest by key; a model missing there contributes none). Files are artifact paths.
 */
export function variantFiles(manifest: Manifest, bundled: ReadonlyMap<string, Manifest>): VariantFile[] {
  if (manifest.cascade === undefined) return manifest.variants.map((v) => ({ id: v.id, file: v.file }));
  return bundledModels(manifest).flatMap(({ key, dir }) =>
    (bundled.get(key)?.variants ?? []).map((v) => ({
      id: qualifiedVariant(key, v.id),
      file: `${dir}/${v.file}`,
      model: key,
    })),
  );
}

/** The model files of the variants not in `held`, less any file a held variant shares: what a device may lack. */
export function filesNotHeld(variants: readonly VariantFile[], held: readonly string[]): Set<string> {
  const skipped = new Set(variants.filter((v) => !held.includes(v.id)).map((v) => v.file));
  for (const v of variants) if (held.includes(v.id)) skipped.delete(v.file);
  return skipped;
}
