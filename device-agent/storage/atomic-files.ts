import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { z } from 'zod';
import { syncDir } from '../../runtime/artifact/index.js';
import { OutpostError, fromFsError, messageOf } from '../../runtime/errors.js';

/**
 * docs/architecture.md, "On the device": every state change is a new file renamed over the old one. Write to a
 * temp file in the same directory, fsync it, rename, fsync the directory: after a crash at any instant the path
 * holds either the old content or the new, never a torn mix.
 */
export async function writeFileAtomic(path: string, data: string | Uint8Array): Promise<void> {
  const dir = dirname(path);
  const temp = join(dir, `.${randomBytes(6).toString('hex')}.tmp`);
  try {
    await mkdir(dir, { recursive: true });
    const handle = await open(temp, 'w', 0o644);
    try {
      await handle.writeFile(data);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, path);
    await syncDir(dir);
  } catch (error) {
    await rm(temp, { force: true }).catch(() => undefined);
    throw error instanceof OutpostError ? error : fromFsError(error, path, 'write');
  }
}

export async function writeJsonAtomic(path: string, value: unknown): Promise<void> {
  await writeFileAtomic(path, `${JSON.stringify(value, null, 2)}\n`);
}

/** Reads and validates a JSON state file; undefined when absent; a corrupt one is an error naming it. */
export async function readJson<S extends z.ZodType>(path: string, schema: S): Promise<z.infer<S> | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw fromFsError(error, path, 'read');
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new OutpostError('CONFIG_INVALID', `${path} is not valid JSON: ${messageOf(error)}`, { cause: error });
  }
  const parsed = schema.safeParse(value);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
    throw new OutpostError('CONFIG_INVALID', `${path}: ${issues}`);
  }
  return parsed.data;
}
