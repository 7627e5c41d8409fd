import { randomBytes } from 'node:crypto';
import { lstat, mkdir, mkdtemp, open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { OutpostError, fromFsError } from '../errors.js';
import { logger } from '../log.js';

/**
 * Build-then-rename (docs/architecture.md, "On the device": every state change is a new file renamed over the old
 * one). A directory is assembled under a hidden name next to its destination, so the final rename(2) stays on one
 * filesystem and is atomic: readers see either nothing, the old directory, or the complete new one.
 */

const log = logger('artifact');

/** A fresh hidden directory beside `dest` (same filesystem), e.g. `.model.staging-Ab12Cd` for `model`. */
export async function makeStagingDir(dest: string): Promise<string> {
  try {
    await mkdir(dirname(dest), { recursive: true });
    return await mkdtemp(join(dirname(dest), `.${basename(dest)}.staging-`));
  } catch (error) {
    throw fromFsError(error, dirname(dest), 'write');
  }
}

export async function pathExists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw fromFsError(error, path, 'read');
  }
}

export function outputExists(path: string): OutpostError {
  return new OutpostError('OUTPUT_UNWRITABLE', `${path} already exists; pass overwrite to replace it`, {
    details: { path },
  });
}

/**
 * fsync(2) on a directory makes the names in it (new files, a rename) durable; without it a power cut can lose
 * them although the data blocks were written. Some platforms (Windows) cannot open a directory for it; skipping
 * there is the best anyone can do. The one directory-sync helper: artifacts, the agent's store and state files,
 * and the compiler's model writer all use it.
 */
export async function syncDir(path: string): Promise<void> {
  let handle;
  try {
    handle = await open(path, 'r');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EISDIR' || code === 'EPERM' || code === 'EACCES') return;
    throw fromFsError(error, path, 'write');
  }
  try {
    await handle.sync();
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== 'EINVAL' && code !== 'EPERM' && code !== 'EBADF') throw fromFsError(error, path, 'write');
  } finally {
    await handle.close();
  }
}

/**
 * Moves the finished `staged` directory to `dest`. With `overwrite`, an existing `dest` is first renamed aside and
 * removed only after the new one is in place, and put back if that rename fails: at no instant is `dest` missing
 * because of a failure, nor half old and half new.
 */
export async function publishDir(staged: string, dest: string, overwrite: boolean): Promise<void> {
  const parent = dirname(dest);
  let aside: string | undefined;
  if (await pathExists(dest)) {
    if (!overwrite) throw outputExists(dest);
    aside = join(parent, `.${basename(dest)}.old-${randomBytes(6).toString('hex')}`);
    try {
      await rename(dest, aside);
    } catch (error) {
      throw fromFsError(error, dest, 'write');
    }
  }
  try {
    await rename(staged, dest);
  } catch (error) {
    if (aside !== undefined) await rename(aside, dest).catch(() => undefined);
    const code = (error as NodeJS.ErrnoException).code;
    // Someone created `dest` between our check and the rename; theirs stays.
    if (code === 'EEXIST' || code === 'ENOTEMPTY' || code === 'ENOTDIR') throw outputExists(dest);
    throw fromFsError(error, dest, 'write');
  }
  await syncDir(parent);
  if (aside !== undefined) await removeQuietly(aside);
}

/** Best-effort cleanup on a path that has already failed; the original error is the one worth reporting. */
export async function removeQuietly(path: string): Promise<void> {
  try {
    await rm(path, { recursive: true, force: true });
  } catch (error) {
    log.warn({ path, err: error }, 'could not remove temporary path');
  }
}
