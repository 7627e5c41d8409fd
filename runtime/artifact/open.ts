import { mkdtemp, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { OutpostError, fromFsError } from '../errors.js';
import { removeQuietly } from './fs-atomic.js';
import { unpackArtifact, type UnpackOptions } from './unpack.js';
import { markVerified, type VerifiedArtifact } from './verified.js';
import { verifyArtifact, type VerifyOptions } from './verify.js';

export interface OpenOptions extends VerifyOptions, UnpackOptions {
  /** Where a `.tar.gz` is unpacked (in a fresh private subdirectory). Default: the OS temp directory. */
  workDir?: string;
}

export interface OpenedArtifact extends VerifiedArtifact {
  /** Removes what opening created (the unpacked copy of an archive); a no-op for a directory. Idempotent. */
  dispose(): Promise<void>;
}

const ARCHIVE_SUFFIXES = ['.tar.gz', '.tgz'];

/**
 * Opens an artifact given as a directory or a `.tar.gz`/`.tgz` and returns it verified. An archive is unpacked
 * (with all of unpackArtifact's checks) into a new mkdtemp directory that only this process knows about, so nothing
 * can change the files between verification and loading; `dispose()` removes it. If verification fails, the unpacked
 * copy is removed before the error is thrown: nothing from a failed artifact outlives the call.
 */
export async function openArtifact(path: string, options: OpenOptions = {}): Promise<OpenedArtifact> {
  let isDirectory: boolean;
  try {
    isDirectory = (await stat(path)).isDirectory();
  } catch (error) {
    throw fromFsError(error, path, 'read');
  }
  if (isDirectory) {
    const verified = await verifyArtifact(path, options);
    return markVerified({ ...verified, dispose: () => Promise.resolve() });
  }
  if (!ARCHIVE_SUFFIXES.some((suffix) => path.endsWith(suffix))) {
    throw new OutpostError(
      'INVALID_ARGUMENT',
      `${path} is neither a directory nor a ${ARCHIVE_SUFFIXES.join(' or ')} archive`,
      {
        details: { path, accepted: ['directory', ...ARCHIVE_SUFFIXES] },
      },
    );
  }

  const workDir = options.workDir ?? tmpdir();
  let scratch: string;
  try {
    scratch = await mkdtemp(join(workDir, 'outpost-artifact-'));
  } catch (error) {
    throw fromFsError(error, workDir, 'write');
  }
  try {
    const dir = join(scratch, 'artifact');
    await unpackArtifact(path, dir, options);
    const verified = await verifyArtifact(dir, options);
    let disposed: Promise<void> | undefined;
    return markVerified({ ...verified, dispose: () => (disposed ??= removeQuietly(scratch)) });
  } catch (error) {
    await removeQuietly(scratch);
    throw error;
  }
}
