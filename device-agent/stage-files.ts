import { copyFile, link, mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { MANIFEST_FILE, SIGNATURE_FILE, parseManifestBytes } from '../runtime/artifact/index.js';
import { fromFsError, isOutpostError } from '../runtime/errors.js';
import { absentVariants, filesFor } from './delivery-check.js';
import { DELIVERY_INDEX, FILES_DIR } from './download-files.js';
import { heldVariants, readBundledManifests } from './fetch-choice.js';
import { parseDeliveryIndex, type DeliveryIndex } from './protocol/index.js';

/**
 * A files-layout download (download-files.ts, in `dir`) as an artifact directory in `staging`: manifest.json and
 * manifest.sig byte for byte from the delivery index, every other file of `variants` hard-linked (copied across
 * filesystems) from the download (for a pipeline, `variants` are its bundled models', `det/int8`). Returns the
 * variants it lacks, which verification (verifyArtifact's
 * `absentVariants`) and every later load must be told about. The agent's install step and the fleet simulator's
 * devices both stage this way.
 */
export async function stageDownloadedFiles(
  dir: string,
  staging: string,
  variants: readonly string[],
): Promise<string[]> {
  const index = await readIndex(join(dir, DELIVERY_INDEX));
  const manifestBytes = Buffer.from(index.manifest, 'base64');
  const { manifest } = parseManifestBytes(manifestBytes);
  // A pipeline's bundled manifests are among the fetched files, hashed as they arrived: they say what its variants are.
  const bundled = await readBundledManifests(join(dir, FILES_DIR), manifest);
  const held = heldVariants(manifest, bundled, variants);
  await mkdir(staging, { recursive: true });
  await writeFile(join(staging, MANIFEST_FILE), manifestBytes);
  if (index.signature !== undefined)
    await writeFile(join(staging, SIGNATURE_FILE), Buffer.from(index.signature, 'base64'));
  for (const path of filesFor(manifest, held, bundled)) {
    const from = join(dir, FILES_DIR, path);
    const to = join(staging, path);
    await mkdir(dirname(to), { recursive: true });
    await link(from, to).catch(async (error: unknown) => {
      if ((error as NodeJS.ErrnoException).code !== 'EXDEV') throw fromFsError(error, from, 'read');
      await copyFile(from, to);
    });
  }
  return absentVariants(manifest, held, bundled);
}

async function readIndex(path: string): Promise<DeliveryIndex> {
  try {
    return parseDeliveryIndex(await readFile(path));
  } catch (error) {
    throw isOutpostError(error) ? error : fromFsError(error, path, 'read');
  }
}
