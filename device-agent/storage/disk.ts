import { statfs } from 'node:fs/promises';
import { arch } from 'node:os';
import { OutpostError, messageOf } from '../../runtime/errors.js';

/** This host as artifact manifests and job documents name architectures. */
export function hostArch(): 'x86_64' | 'arm64' {
  const a = arch();
  if (a === 'x64') return 'x86_64';
  if (a === 'arm64') return 'arm64';
  throw new OutpostError(
    'MODEL_UNSUPPORTED',
    `this host's architecture "${a}" is not one Outpost ships for (x86_64, arm64)`,
  );
}

export async function freeBytes(path: string): Promise<number> {
  const s = await statfs(path);
  return s.bavail * s.bsize;
}

/** Refuses a step that needs `needed` bytes on `path`'s filesystem when fewer than that plus the margin are free. */
export async function requireSpace(path: string, needed: number, margin: number, what: string): Promise<void> {
  const free = await freeBytes(path);
  if (free < needed + margin) {
    throw new OutpostError(
      'DISK_FULL',
      `${what} needs ${needed} bytes plus a ${margin}-byte margin on ${path}; ${free} are free`,
      { details: { path, needed, margin, free } },
    );
  }
}

/** Total bytes of the files in a .tar.gz (what extraction will write), read from its headers. */
export async function archiveContentBytes(tgz: string): Promise<number> {
  let total = 0;
  try {
    const { list } = await import('tar'); // only a deployment reads an archive: an idle agent never loads node-tar
    await list({ file: tgz, strict: true, onReadEntry: (entry) => (total += entry.size) });
  } catch (error) {
    throw new OutpostError('ARTIFACT_ARCHIVE_INVALID', `${tgz} is not a readable .tar.gz: ${messageOf(error)}`, {
      cause: error,
    });
  }
  return total;
}
