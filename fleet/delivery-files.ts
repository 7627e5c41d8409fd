import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  DELIVERY_INDEX_FILE_ID,
  MAX_FILE_ID,
  buildBlockIndexFromFile,
  encodeDeliveryIndex,
  type DeliveryFile,
} from '../device-agent/protocol/index.js';
import { MANIFEST_FILE, SIGNATURE_FILE, type Manifest } from '../runtime/artifact/index.js';
import { OutpostError, fromFsError } from '../runtime/errors.js';
import { withOutpostErrors } from './protocol-errors.js';
import type { StreamFile } from './stream-files.js';

/**
 * The `files` stream layout (docs/job-document.md, "Stream layouts"): file 0 is the delivery index (the signed
 * manifest and every file's block hashes), files 1… are the artifact's files, one stream file each, so a device
 * fetches the manifest, decides, and then only the variants it will run. Built from a verified artifact directory;
 * each file is copied into the scratch directory first and its copy hashed, so what ships is what was checked.
 */
export interface DeliveryFiles {
  readonly indexPath: string;
  readonly indexBytes: Buffer;
  /** The delivery index first, then one stream file per artifact file. */
  readonly files: readonly StreamFile[];
  /** The index's entries (artifact path, file id, size, sha256), in file id order. */
  readonly entries: readonly DeliveryFile[];
  /** Bytes of every artifact file (what a device fetching everything fetches, index aside). */
  readonly totalBytes: number;
}

/** Stream file ids are 0–255 (GetStream `f`): an artifact of more files ships in the archive layout. */
export const MAX_DELIVERY_FILES = MAX_FILE_ID - DELIVERY_INDEX_FILE_ID;

export async function prepareDeliveryFiles(
  dir: string,
  manifest: Manifest,
  scratch: string,
  blockSize: number,
): Promise<DeliveryFiles> {
  const paths = Object.keys(manifest.files).sort();
  if (paths.length > MAX_DELIVERY_FILES) {
    throw new OutpostError(
      'INVALID_ARGUMENT',
      `artifact ${manifest.name} has ${paths.length} files; the files layout carries at most ${MAX_DELIVERY_FILES} (stream file ids 1–${MAX_FILE_ID}): deploy it in the archive layout`,
      { details: { files: paths.length, accepted: `at most ${MAX_DELIVERY_FILES}` } },
    );
  }
  const out = join(scratch, 'files');
  await mkdir(out, { recursive: true }).catch((error: unknown) => Promise.reject(fromFsError(error, out, 'write')));
  const manifestBytes = await read(join(dir, MANIFEST_FILE));
  const signature = await read(join(dir, SIGNATURE_FILE)).catch((error: unknown) => {
    if (error instanceof OutpostError && error.code === 'FILE_NOT_FOUND') return undefined;
    throw error;
  });
  const entries: DeliveryFile[] = [];
  const files: StreamFile[] = [];
  let totalBytes = 0;
  for (const [i, path] of paths.entries()) {
    const fileId = DELIVERY_INDEX_FILE_ID + 1 + i;
    const copy = join(out, String(fileId));
    await copyFile(join(dir, path), copy).catch((error: unknown) =>
      Promise.reject(fromFsError(error, join(dir, path), 'read')),
    );
    const index = await withOutpostErrors(() => buildBlockIndexFromFile(copy, blockSize));
    const expected = manifest.files[path];
    if (expected === undefined || expected.sha256 !== index.sha256 || expected.bytes !== index.size) {
      throw new OutpostError('ARTIFACT_HASH_MISMATCH', `${path} in ${dir} changed while it was being prepared`, {
        details: { path, expected, actual: { sha256: index.sha256, bytes: index.size } },
      });
    }
    entries.push({ path, fileId, size: index.size, sha256: index.sha256, blocks: index.blocks });
    files.push({ fileId, path: copy });
    totalBytes += index.size;
  }
  const indexBytes = encodeDeliveryIndex({
    algorithm: 'sha256',
    blockSize,
    manifest: manifestBytes.toString('base64'),
    ...(signature === undefined ? {} : { signature: signature.toString('base64') }),
    files: entries,
  });
  const indexPath = join(scratch, 'delivery.json');
  await writeFile(indexPath, indexBytes).catch((error: unknown) =>
    Promise.reject(fromFsError(error, indexPath, 'write')),
  );
  const all = [{ fileId: DELIVERY_INDEX_FILE_ID, path: indexPath }, ...files];
  return { indexPath, indexBytes, files: all, entries, totalBytes };
}

async function read(path: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (error) {
    throw fromFsError(error, path, 'read');
  }
}
