import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { open, readFile, rename, writeFile } from 'node:fs/promises';
import * as z from 'zod';
import { fromFsError, messageOf } from '../errors.js';
import { logger } from '../log.js';
import { removeQuietly } from './fs-atomic.js';

const log = logger('artifact.verdicts');

/**
 * What identifies one state of a file: the inode (so a rename into the store keeps its verdict, and a replacement by
 * rename loses it), its size, and its modification and change times in nanoseconds. ctime cannot be set from user
 * space: any write or `utimes()` (even one restoring mtime) moves it, so same-size tampering is seen here.
 */
export interface FileIdentity {
  readonly dev: bigint;
  readonly ino: bigint;
  readonly size: bigint;
  readonly mtimeNs: bigint;
  readonly ctimeNs: bigint;
}

/** Remembered verification results: the sha256 a file had when hashed, valid only while its identity is unchanged. */
export interface Verdicts {
  /** The sha256 this exact file state hashed to, or undefined (never seen, or changed since). */
  known(file: FileIdentity): string | undefined;
  /** `file` was just hashed to `sha256`, and that matched what a verified manifest expects. */
  remember(file: FileIdentity, sha256: string): void;
}

const SCHEMA = z.object({
  version: z.literal(1),
  entries: z.record(
    z.string(),
    z.object({ size: z.string(), mtimeNs: z.string(), ctimeNs: z.string(), sha256: z.string() }),
  ),
  hmac: z.string(),
});
type Entries = z.infer<typeof SCHEMA>['entries'];

const KEY_BYTES = 32; // HMAC-SHA256 key, device-local

function keyOf(file: FileIdentity): string {
  return `${file.dev}:${file.ino}`;
}

/**
 * Verdicts persisted in one file, authenticated with an HMAC under a device-local secret (mode 0600, made on first
 * use): a record written by anyone without the secret — or a corrupt or missing one — is ignored, so every file is
 * hashed again. It only ever skips re-hashing a file whose identity is unchanged since the agent itself hashed it
 * and found it matching; the manifest and its signature are still checked every time (docs/agent-footprint.md).
 */
export class VerdictFile implements Verdicts {
  private changed = false;

  private constructor(
    private readonly path: string,
    private readonly key: { readonly bytes: Buffer; readonly path: string; unsaved: boolean },
    private readonly entries: Entries,
  ) {}

  static async open(path: string, keyPath: string): Promise<VerdictFile> {
    const key = await deviceKey(keyPath);
    let entries: Entries = {};
    try {
      if (key.unsaved) throw Object.assign(new Error('no device key yet'), { code: 'ENOENT' });
      const record = SCHEMA.parse(JSON.parse(await readFile(path, 'utf8')));
      const expected = mac(key.bytes, record.entries);
      const given = Buffer.from(record.hmac, 'hex');
      if (given.length === expected.length && timingSafeEqual(given, expected)) entries = record.entries;
      else log.warn({ path }, 'verification record not authentic; every installed file is hashed again');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT')
        log.warn(
          { path, error: messageOf(error) },
          'verification record unreadable; every installed file is hashed again',
        );
    }
    return new VerdictFile(path, key, entries);
  }

  known(file: FileIdentity): string | undefined {
    const entry = this.entries[keyOf(file)];
    if (entry === undefined) return undefined;
    const same =
      entry.size === String(file.size) &&
      entry.mtimeNs === String(file.mtimeNs) &&
      entry.ctimeNs === String(file.ctimeNs);
    return same ? entry.sha256 : undefined;
  }

  remember(file: FileIdentity, sha256: string): void {
    this.entries[keyOf(file)] = {
      size: String(file.size),
      mtimeNs: String(file.mtimeNs),
      ctimeNs: String(file.ctimeNs),
      sha256,
    };
    this.changed = true;
  }

  /**
   * Writes the record if anything was remembered since it was opened (temp file + fsync + rename). A record is only
   * a shortcut: failing to write it (a full disk) is logged, never fatal; the next boot hashes what it could not skip.
   */
  async save(): Promise<void> {
    if (!this.changed) return;
    this.changed = false;
    const temp = `${this.path}.${process.pid}.tmp`;
    try {
      if (this.key.unsaved) {
        await writeFile(this.key.path, this.key.bytes, { mode: 0o600 }); // over a corrupt (short) key, if any
        this.key.unsaved = false;
      }
      const record = { version: 1, entries: this.entries, hmac: mac(this.key.bytes, this.entries).toString('hex') };
      const handle = await open(temp, 'w', 0o600);
      try {
        await handle.writeFile(JSON.stringify(record));
        await handle.sync();
      } finally {
        await handle.close();
      }
      await rename(temp, this.path);
    } catch (error) {
      await removeQuietly(temp);
      log.warn(
        { path: this.path, error: messageOf(error) },
        'verification record not written; the next boot re-hashes',
      );
    }
  }
}

function mac(key: Buffer, entries: Entries): Buffer {
  const canonical = Object.keys(entries)
    .sort()
    .map((k) => {
      const e = entries[k];
      return e === undefined ? '' : `${k} ${e.size} ${e.mtimeNs} ${e.ctimeNs} ${e.sha256}`;
    })
    .join('\n');
  return createHmac('sha256', key).update(canonical).digest();
}

/** The device-local HMAC key; a new one (written at the first save, so opening writes nothing) when there is none. */
async function deviceKey(path: string): Promise<{ bytes: Buffer; path: string; unsaved: boolean }> {
  try {
    const bytes = await readFile(path);
    if (bytes.length === KEY_BYTES) return { bytes, path, unsaved: false };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw fromFsError(error, path, 'read');
  }
  return { bytes: randomBytes(KEY_BYTES), path, unsaved: true };
}
