import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Writable } from 'node:stream';
import { OutpostError, fromFsError } from '../../runtime/errors.js';

/**
 * Content-addressed files: `<dir>/sha256/<2 hex>/<64 hex>`. A blob is written to a temporary name in its final
 * directory, fsynced, then renamed into place, so a path that exists always holds exactly the bytes its name says,
 * after SIGKILL too; writing the same bytes twice is one file. Streams serve from here by position, to any number of
 * jobs (fleet/service/streams.ts), and a stream's file table is built from the artifact's manifest of files.
 */
const SHA256 = /^[0-9a-f]{64}$/;

export class BlobStore {
  constructor(readonly dir: string) {}

  path(sha256: string): string {
    if (!SHA256.test(sha256)) {
      throw new OutpostError('INVALID_ARGUMENT', `${JSON.stringify(sha256)} is not a sha256`, { details: { sha256 } });
    }
    return join(this.dir, 'sha256', sha256.slice(0, 2), sha256);
  }

  async has(sha256: string): Promise<boolean> {
    return stat(this.path(sha256)).then(
      (s) => s.isFile(),
      () => false,
    );
  }

  /** Copies `source` in, hashing as it goes; returns its digest. */
  async put(source: string): Promise<{ sha256: string; bytes: number }> {
    const tmpDir = join(this.dir, 'tmp');
    await mkdir(tmpDir, { recursive: true }).catch((error: unknown) =>
      Promise.reject(fromFsError(error, tmpDir, 'write')),
    );
    const tmp = join(tmpDir, `${randomBytes(8).toString('hex')}.part`);
    const hash = createHash('sha256');
    let bytes = 0;
    const handle = await open(tmp, 'wx').catch((error: unknown) => Promise.reject(fromFsError(error, tmp, 'write')));
    try {
      const sink = new Writable({
        write(chunk: Buffer, _encoding, done) {
          hash.update(chunk);
          bytes += chunk.length;
          handle.write(chunk).then(() => done(), done);
        },
      });
      await pipeline(createReadStream(source), sink).catch((error: unknown) =>
        Promise.reject(fromFsError(error, source, 'read')),
      );
      await handle.sync();
    } catch (error) {
      await handle.close();
      await rm(tmp, { force: true });
      throw error;
    }
    await handle.close();
    const sha256 = hash.digest('hex');
    const final = this.path(sha256);
    try {
      await mkdir(join(this.dir, 'sha256', sha256.slice(0, 2)), { recursive: true });
      if (await this.has(sha256)) await rm(tmp, { force: true });
      else await rename(tmp, final);
    } catch (error) {
      await rm(tmp, { force: true });
      throw fromFsError(error, final, 'write');
    }
    return { sha256, bytes };
  }
}
