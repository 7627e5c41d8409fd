import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { sha256Bytes } from '../artifact/hash.js';
import type { Manifest } from '../artifact/manifest.js';
import { OutpostError, fromFsError } from '../errors.js';
import { baselineSchema, type Baseline } from './baseline.js';

/** Baselines are small (bins × features); a larger file is not one. */
const MAX_BASELINE_BYTES = 8 * 1024 * 1024;

/**
 * Reads an artifact's baseline, checking its bytes against the manifest's hash as they are read (the artifact was
 * verified when it was opened; this read is a second one, so it is checked again): undefined when the artifact has
 * none (compiled before baselines, or from a model with no graded inputs).
 */
export async function readBaseline(manifest: Manifest, artifactDir: string): Promise<Baseline | undefined> {
  if (manifest.baseline === undefined) return undefined;
  const entry = manifest.files[manifest.baseline];
  const path = join(artifactDir, manifest.baseline);
  if (entry === undefined)
    throw new OutpostError('ARTIFACT_FILE_MISSING', `${manifest.baseline}: the manifest lists no hash for it`);
  if (entry.bytes > MAX_BASELINE_BYTES)
    throw new OutpostError('ARTIFACT_MANIFEST_INVALID', `${path}: ${entry.bytes} bytes is not a baseline`);
  const bytes = await readFile(path).catch((error: unknown) => {
    throw fromFsError(error, path, 'read');
  });
  if (sha256Bytes(bytes) !== entry.sha256)
    throw new OutpostError('ARTIFACT_HASH_MISMATCH', `${path}: contents do not match the manifest's sha256`, {
      details: { path },
    });
  let json: unknown;
  try {
    json = JSON.parse(bytes.toString('utf8'));
  } catch (error) {
    throw new OutpostError('ARTIFACT_MANIFEST_INVALID', `${path}: not JSON`, { cause: error });
  }
  const parsed = baselineSchema.safeParse(json);
  if (!parsed.success)
    throw new OutpostError('ARTIFACT_MANIFEST_INVALID', `${path}: not a baseline: ${parsed.error.issues[0]?.message}`, {
      details: { path },
    });
  return parsed.data;
}
