import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import { fromFsError } from '../errors.js';

/** sha256 and size of one file, as the manifest records them (`files[path]`, `variants[i]`). */
export interface FileDigest {
  /** Lowercase hex. */
  sha256: string;
  bytes: number;
}

const CHUNK_BYTES = 1024 * 1024; // bytes per read: large enough that syscalls do not dominate hashing

/**
 * O_NOFOLLOW: an artifact file that is (or has just been swapped for) a symlink is refused by the kernel rather than
 * followed out of the artifact. Windows has no such flag; there the directory walk's lstat is the only guard.
 */
export const OPEN_NOFOLLOW: number = (constants as Partial<typeof constants>).O_NOFOLLOW ?? 0;

/** Streams a file through sha256 without holding it in memory (variants run to hundreds of megabytes). */
export async function sha256File(path: string): Promise<FileDigest> {
  let handle;
  try {
    handle = await open(path, constants.O_RDONLY | OPEN_NOFOLLOW);
  } catch (error) {
    throw fromFsError(error, path, 'read');
  }
  try {
    const hash = createHash('sha256');
    const buffer = Buffer.allocUnsafe(CHUNK_BYTES);
    let bytes = 0;
    for (;;) {
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, null);
      if (bytesRead === 0) break;
      bytes += bytesRead;
      hash.update(buffer.subarray(0, bytesRead));
    }
    return { sha256: hash.digest('hex'), bytes };
  } catch (error) {
    throw fromFsError(error, path, 'read');
  } finally {
    await handle.close();
  }
}

export function sha256Bytes(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('hex');
}
