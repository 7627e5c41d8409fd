import { createReadStream, createWriteStream, type WriteStream } from 'node:fs';
import { mkdir, open } from 'node:fs/promises';
import { dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import type { ReadEntry } from 'tar';
import { OutpostError, fromFsError, messageOf } from '../errors.js';
import { makeStagingDir, outputExists, pathExists, publishDir, removeQuietly, syncDir } from './fs-atomic.js';
import { relativePathSchema } from './manifest.js';
import { listArtifactFiles } from './walk.js';

export interface UnpackOptions {
  /** Cap on the total size of the files extracted (zip-bomb guard). */
  maxBytes?: number;
  /** Cap on the number of entries. */
  maxEntries?: number;
}

export const DEFAULT_MAX_UNPACKED_BYTES = 8 * 1024 ** 3; // bytes: above the largest model a device can run
export const DEFAULT_MAX_ENTRIES = 10_000; // entries: an artifact has a handful; this stops inode exhaustion
const MAX_PATH_BYTES = 255; // the manifest's own limit on an artifact path (manifest.ts, relativePathSchema)
const MAX_SEGMENT_BYTES = 255; // NAME_MAX on Linux, macOS and Windows
const GZIP_MAGIC = [0x1f, 0x8b]; // RFC 1952 §2.3.1, ID1 ID2
const FILE_TYPES = new Set(['File', 'OldFile', 'ContiguousFile']);
/** Entry types that can point outside the directory (links) or are not data (devices, FIFOs): never extracted. */
const ESCAPING_TYPES = new Set(['SymbolicLink', 'Link', 'CharacterDevice', 'BlockDevice', 'FIFO']);

/**
 * Extracts an artifact `.tar.gz` to `destDir`, which must not exist yet. Every entry header is checked before
 * anything is written for it, and the paths we write are computed and re-checked by us rather than left to a
 * library's extraction logic: an absolute name, a `..` segment, a backslash, a control character, an over-long name,
 * or a link/device/FIFO entry is ARTIFACT_PATH_ESCAPE; a corrupt or truncated gzip or tar, a duplicate entry, or
 * going over `maxBytes`/`maxEntries` is ARTIFACT_ARCHIVE_INVALID. Extraction happens in a staging directory renamed
 * to `destDir` only on success; on failure it is removed, so nothing is left anywhere.
 *
 * This checks the container only; `verifyArtifact` checks the content.
 */
export async function unpackArtifact(tarGzPath: string, destDir: string, options: UnpackOptions = {}): Promise<void> {
  const dest = resolve(destDir);
  if (await pathExists(dest)) throw outputExists(dest);
  await checkGzipMagic(tarGzPath);
  const staging = await makeStagingDir(dest);
  try {
    await extract(tarGzPath, staging, {
      maxBytes: options.maxBytes ?? DEFAULT_MAX_UNPACKED_BYTES,
      maxEntries: options.maxEntries ?? DEFAULT_MAX_ENTRIES,
    });
    const files = await listArtifactFiles(staging); // also proves no symlink or special file got in
    const dirs = new Set([staging, ...files.map((file) => dirname(join(staging, file)))]);
    for (const dir of [...dirs].sort().reverse()) await syncDir(dir);
    await publishDir(staging, dest, false);
  } catch (error) {
    await removeQuietly(staging);
    throw error;
  }
}

async function checkGzipMagic(path: string): Promise<void> {
  const head = Buffer.alloc(GZIP_MAGIC.length);
  let bytesRead: number;
  try {
    const handle = await open(path, 'r');
    try {
      ({ bytesRead } = await handle.read(head, 0, head.length, 0));
    } finally {
      await handle.close();
    }
  } catch (error) {
    throw fromFsError(error, path, 'read');
  }
  if (bytesRead < head.length || GZIP_MAGIC.some((byte, i) => head[i] !== byte)) {
    throw archiveInvalid(path, 'not a gzip file (an artifact archive is a .tar.gz)');
  }
}

interface Limits {
  maxBytes: number;
  maxEntries: number;
}

/** Streams the archive through node-tar's parser (which gunzips it) and writes each accepted entry ourselves. */
async function extract(archive: string, staging: string, limits: Limits): Promise<void> {
  // node-tar loads when an archive is read, not with the artifact module (an idle agent never needs it).
  const { Parser } = await import('tar');
  return new Promise((resolvePromise, reject) => {
    const writes: Promise<void>[] = [];
    const streams = new Set<WriteStream>();
    let failure: Error | undefined;
    let settled = false;
    let entries = 0;
    let totalBytes = 0;

    const source = createReadStream(archive);
    // strict: every tar warning (bad checksum, truncated input, unrecognised format) is an error.
    const parser = new Parser({ strict: true });

    const settle = (): void => {
      if (settled) return;
      settled = true;
      void Promise.allSettled(writes).then(() => {
        if (failure === undefined) resolvePromise();
        else reject(failure);
      });
    };
    const fail = (error: unknown): void => {
      if (failure !== undefined) return;
      failure = error instanceof Error ? error : new Error(messageOf(error));
      for (const stream of streams) stream.destroy();
      source.destroy();
      parser.abort(new Error('extraction stopped'));
      settle();
    };

    source.on('error', (error) => {
      fail(fromFsError(error, archive, 'read'));
    });
    parser.on('error', (error: unknown) => {
      fail(archiveInvalid(archive, messageOf(error), error));
    });
    // node-tar skips entry types it does not know (sparse files, ACLs, volume headers); we refuse them.
    parser.on('ignoredEntry', (entry: ReadEntry) => {
      fail(archiveInvalid(archive, `entry ${show(entry.path)} has unsupported type ${entry.type}`));
    });
    parser.on('entry', (entry: ReadEntry) => {
      if (failure !== undefined) {
        entry.resume();
        return;
      }
      try {
        const rel = checkedPath(entry, archive, staging);
        entries += 1;
        totalBytes += entry.size;
        if (entries > limits.maxEntries) throw archiveInvalid(archive, `more than ${limits.maxEntries} entries`);
        if (totalBytes > limits.maxBytes) {
          throw archiveInvalid(archive, `more than ${limits.maxBytes} bytes once extracted (at ${show(entry.path)})`);
        }
        if (rel === undefined || entry.type === 'Directory') {
          entry.resume();
          if (rel !== undefined)
            writes.push(mkdir(join(staging, rel), { recursive: true }).then(noop, onWriteError(rel)));
          return;
        }
        writes.push(writeEntry(entry, join(staging, rel)).catch(onWriteError(rel)));
      } catch (error) {
        entry.resume();
        fail(error);
      }
    });
    parser.on('end', settle);

    const onWriteError =
      (rel: string) =>
      (error: unknown): void => {
        const code = (error as NodeJS.ErrnoException).code;
        if (code === 'EEXIST' || code === 'ENOTDIR' || code === 'EISDIR') {
          fail(archiveInvalid(archive, `entry ${show(rel)} duplicates or collides with another entry`, error));
        } else {
          fail(fromFsError(error, join(staging, rel), 'write')); // ENOSPC → DISK_FULL
        }
      };

    const writeEntry = async (entry: ReadEntry, target: string): Promise<void> => {
      await mkdir(dirname(target), { recursive: true });
      if (failure !== undefined) {
        entry.resume();
        return;
      }
      // 'wx': never follow or overwrite anything already there (a duplicate entry, or a case-folded twin).
      const stream = createWriteStream(target, { flags: 'wx', mode: 0o644, flush: true });
      streams.add(stream);
      await new Promise<void>((done, failed) => {
        let error: Error | undefined;
        stream.on('error', (e: Error) => (error ??= e));
        stream.on('close', () => {
          streams.delete(stream);
          if (error === undefined) done();
          else failed(error);
        });
        entry.pipe(stream);
      });
    };

    source.pipe(parser);
  });
}

/**
 * The entry's path inside the staging directory, or undefined for the archive's root directory entry (`./`).
 * Checked on the header alone (type, name), then once more on the resolved path, trusting neither tar nor ourselves.
 */
function checkedPath(entry: ReadEntry, archive: string, staging: string): string | undefined {
  const name = entry.path;
  const escape = (why: string): OutpostError =>
    new OutpostError('ARTIFACT_PATH_ESCAPE', `${archive}: entry ${show(name)} ${why}; refusing to extract`, {
      details: { archive, entry: name, type: entry.type },
    });
  if (ESCAPING_TYPES.has(entry.type)) {
    const target = entry.linkpath === undefined ? '' : ` to ${show(entry.linkpath)}`;
    throw escape(`is a ${entry.type}${target}; artifacts hold only regular files and directories`);
  }
  if (!FILE_TYPES.has(entry.type) && entry.type !== 'Directory') {
    throw archiveInvalid(archive, `entry ${show(name)} has unsupported type ${entry.type}`);
  }
  if (name.includes('\\')) throw escape('contains a backslash (a path separator on Windows)');
  if (name.startsWith('/') || /^[A-Za-z]:/.test(name)) throw escape('is an absolute path');
  const segments = name.split('/').filter((s) => s !== '' && s !== '.'); // `./a` and a directory's trailing `/`
  if (segments.includes('..')) throw escape('contains a ".." segment');
  if (segments.some((s) => Buffer.byteLength(s) > MAX_SEGMENT_BYTES)) throw escape('has a segment over 255 bytes');
  const rel = segments.join('/');
  if (rel === '') {
    if (entry.type === 'Directory') return undefined;
    throw escape('names no file inside the artifact');
  }
  if (Buffer.byteLength(rel) > MAX_PATH_BYTES) throw escape(`is longer than ${MAX_PATH_BYTES} bytes`);
  // The manifest's own rule for artifact paths (also: no control characters), so the two can never disagree.
  const valid = relativePathSchema.safeParse(rel);
  if (!valid.success) throw escape(`is not ${valid.error.issues[0]?.message ?? 'a valid artifact path'}`);
  const back = relative(staging, resolve(staging, rel));
  if (back === '' || back.split(sep)[0] === '..' || isAbsolute(back)) throw escape('resolves outside the artifact');
  return rel;
}

function archiveInvalid(archive: string, problem: string, cause?: unknown): OutpostError {
  return new OutpostError('ARTIFACT_ARCHIVE_INVALID', `${archive}: ${problem}`, { cause, details: { archive } });
}

/** An entry name for a message: quoted and escaped (a newline in a name must not forge a log line), and shortened. */
function show(name: string): string {
  const SHOWN_CHARS = 120;
  return JSON.stringify(name.length > SHOWN_CHARS ? `${name.slice(0, SHOWN_CHARS)}…` : name);
}

function noop(): void {
  // a directory entry needs nothing after its mkdir
}
