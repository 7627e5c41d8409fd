import type { Dirent } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { OutpostError, fromFsError } from '../errors.js';

export interface WalkLimits {
  /** Files and directories together; an artifact has a handful, so a huge tree is refused before it is hashed. */
  maxEntries?: number;
}

export const DEFAULT_MAX_ENTRIES = 10_000; // entries: far above any real artifact, far below what exhausts memory

/**
 * Every regular file under `dir`, as sorted artifact-relative paths with forward slashes. Symlinks are refused,
 * wherever they point (docs/architecture.md, "The artifact": nothing may resolve outside the artifact, and a link
 * inside today can be re-pointed tomorrow); so are sockets, FIFOs and devices, which cannot be artifact content and
 * could block a reader. Directories are not files: an empty one is allowed and ignored.
 */
export async function listArtifactFiles(dir: string, limits: WalkLimits = {}): Promise<string[]> {
  const maxEntries = limits.maxEntries ?? DEFAULT_MAX_ENTRIES;
  const files: string[] = [];
  let seen = 0;
  const pending: string[] = [''];
  for (let relDir = pending.pop(); relDir !== undefined; relDir = pending.pop()) {
    const absolute = relDir === '' ? dir : join(dir, relDir);
    let entries: Dirent[];
    try {
      // withFileTypes reports the entry itself (lstat semantics), never the target of a symlink.
      entries = await readdir(absolute, { withFileTypes: true });
    } catch (error) {
      throw fromFsError(error, absolute, 'read');
    }
    seen += entries.length;
    if (seen > maxEntries) {
      throw new OutpostError('ARTIFACT_FILE_UNEXPECTED', `${dir} holds more than ${maxEntries} entries`, {
        details: { dir, maxEntries },
      });
    }
    for (const entry of entries) {
      const rel = relDir === '' ? entry.name : `${relDir}/${entry.name}`;
      if (entry.isSymbolicLink()) {
        throw new OutpostError(
          'ARTIFACT_PATH_ESCAPE',
          `${rel} in ${dir} is a symlink; artifacts hold only regular files`,
          {
            details: { path: rel, dir },
          },
        );
      }
      if (entry.isDirectory()) pending.push(rel);
      else if (entry.isFile()) files.push(rel);
      else {
        throw new OutpostError('ARTIFACT_FILE_UNEXPECTED', `${rel} in ${dir} is ${kind(entry)}, not a regular file`, {
          details: { path: rel, dir },
        });
      }
    }
  }
  return files.sort();
}

function kind(entry: Dirent): string {
  if (entry.isFIFO()) return 'a FIFO';
  if (entry.isSocket()) return 'a socket';
  if (entry.isBlockDevice() || entry.isCharacterDevice()) return 'a device';
  return 'of an unknown type';
}
