import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, readFile, rename, stat, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { OutpostError, fromFsError, messageOf } from '../runtime/errors.js';
import { logger } from '../runtime/log.js';
import { blockCount, blockLength, parseBlockIndex, verifyBlock, type BlockIndex } from './protocol/index.js';
import { writeFileAtomic } from './storage/atomic-files.js';
import { StreamFetcher, downloadError, type DownloadOptions } from './stream-fetcher.js';
import { ArrivalsLog, BlockWriter, InOrderHash } from './block-writes.js';

const log = logger('agent.download');

export type { DownloadOptions, DownloadProgress } from './stream-fetcher.js';

const PART = 'artifact.part';
const DONE = 'artifact.tar.gz';
const INDEX = 'index.json';
/** One uint32 per arrival: how many block bytes came in. Appended in batches without fsync (block-writes.ts). */
export const ARRIVALS = 'arrivals.log';
/** Arrival records per append: a SIGKILL loses fewer than two batches (one filling, one being written). */
export const ARRIVALS_BATCH = 32;
/** A batch that does not fill (a stalled or slow stream) is appended this long after its first record. */
const ARRIVALS_LINGER_MS = 100; // ms
/** Positional block writes in flight while the next blocks arrive. */
const WRITE_DEPTH = 4;
/** Blocks arrived ahead of their turn kept for the running digest, at most (past it the digest reads the disk). */
const HOLD_BLOCKS = 16;

/** Sum of the arrivals log: bytes fetched over all runs. */
async function fetchedSoFar(dir: string): Promise<number> {
  try {
    const bytes = await readFile(join(dir, ARRIVALS));
    let sum = 0;
    for (let i = 0; i + 4 <= bytes.length; i += 4) sum += bytes.readUInt32LE(i);
    return sum;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw fromFsError(error, join(dir, ARRIVALS), 'read');
  }
}

export async function sha256Of(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/**
 * Blocks already on disk: every block whose bytes in the partial file hash to the index's value. Content is the
 * record (no bitmap file to fall out of step with the data), so after SIGKILL or power loss nothing verified is
 * fetched again and nothing unverified is trusted.
 */
export async function blocksOnDisk(file: FileHandle, index: BlockIndex): Promise<Set<number>> {
  const have = new Set<number>();
  const size = (await file.stat()).size;
  const buffer = Buffer.alloc(index.blockSize);
  for (let block = 0; block < index.blocks.length; block++) {
    const length = blockLength(index.size, index.blockSize, block);
    if (block * index.blockSize + length > size) break; // the partial file ends before this block
    const { bytesRead } = await file.read(buffer, 0, length, block * index.blockSize);
    if (bytesRead === length && verifyBlock(index, block, buffer.subarray(0, length))) have.add(block);
  }
  return have;
}

/** The index file: fetched whole (it is small), checked against the job document's size and sha256. */
async function fetchIndex(options: DownloadOptions, onArrival: (bytes: number) => Promise<void>): Promise<BlockIndex> {
  const { document, dir } = options;
  const path = join(dir, INDEX);
  try {
    const cached = await readFile(path);
    if (createHash('sha256').update(cached).digest('hex') === document.artifact.indexSha256)
      return parseBlockIndex(cached);
  } catch {
    // absent or unreadable: fetch it
  }
  const { indexSize, blockSize, indexFileId } = document.artifact;
  const buffer = Buffer.alloc(indexSize);
  const missing = new Set(Array.from({ length: blockCount(indexSize, blockSize) }, (_, i) => i));
  await new StreamFetcher(options, indexFileId, indexSize, blockSize).fetch(
    missing,
    (block, bytes) => {
      if (bytes.length !== blockLength(indexSize, blockSize, block)) return Promise.resolve(false);
      buffer.set(bytes, block * blockSize);
      return Promise.resolve(true);
    },
    onArrival,
  );
  if (createHash('sha256').update(buffer).digest('hex') !== document.artifact.indexSha256) {
    throw new OutpostError(
      'DOWNLOAD_FAILED',
      `block index of stream ${document.artifact.streamId} does not match the job document's indexSha256`,
      {
        retryable: true,
      },
    );
  }
  const index = parseBlockIndex(buffer);
  if (
    index.size !== document.artifact.size ||
    index.sha256 !== document.artifact.sha256 ||
    index.blockSize !== blockSize
  ) {
    throw new OutpostError(
      'DOWNLOAD_FAILED',
      'block index disagrees with the job document (size, sha256 or block size)',
    );
  }
  await writeFileAtomic(path, buffer);
  return index;
}

/**
 * Downloads the job's artifact archive into `dir`, resumably: blocks already on disk (verified against the index)
 * are never fetched again, each arriving block is checked against its hash before it is written, memory holds at
 * most `maxInFlightBlocks` blocks, and the finished file must match the job document's sha256. Returns its path.
 */
export async function downloadArtifact(options: DownloadOptions): Promise<string> {
  const { dir, document } = options;
  await mkdir(dir, { recursive: true });
  const done = join(dir, DONE);
  const exists = await stat(done).then(
    () => true,
    () => false,
  );
  if (exists && (await sha256Of(done)) === document.artifact.sha256) return done;
  const archiveFileId = document.artifact.fileId;
  if (archiveFileId === undefined) {
    throw new OutpostError('JOB_DOCUMENT_INVALID', 'the archive layout needs artifact.fileId', {
      details: { field: 'artifact.fileId' },
    });
  }

  let fetched = await fetchedSoFar(dir);
  const arrivals = await open(join(dir, ARRIVALS), 'a');
  const arrivalsLog = new ArrivalsLog(arrivals, ARRIVALS_BATCH, ARRIVALS_LINGER_MS);
  const onArrival = (bytes: number) => {
    arrivalsLog.record(bytes);
    fetched += bytes;
    return Promise.resolve();
  };
  let sha256: string | undefined;
  try {
    const index = await fetchIndex(options, onArrival);
    const part = await open(join(dir, PART), 'a+').then(async (h) => {
      await h.close();
      return open(join(dir, PART), 'r+');
    });
    try {
      const have = await blocksOnDisk(part, index);
      let received = [...have].reduce((sum, b) => sum + blockLength(index.size, index.blockSize, b), 0);
      const missing = new Set(Array.from({ length: index.blocks.length }, (_, i) => i).filter((b) => !have.has(b)));
      const report = () =>
        options.onProgress?.({ bytesTotal: index.size, bytesReceived: received, bytesFetched: fetched });
      report();
      if (have.size > 0) log.info({ blocks: have.size, of: index.blocks.length }, 'resuming download');
      const writer = new BlockWriter(part, index.blockSize, WRITE_DEPTH);
      const whole = new InOrderHash(index.blockSize, Math.min(HOLD_BLOCKS, options.maxInFlightBlocks));
      if (have.size > 0) whole.stop(); // blocks on disk never arrive: the digest reads the file
      try {
        await new StreamFetcher(options, archiveFileId, index.size, index.blockSize).fetch(
          missing,
          async (block, bytes) => {
            if (!verifyBlock(index, block, bytes)) return false;
            await writer.write(block, bytes);
            whole.add(block, bytes);
            received += bytes.length;
            report();
            return true;
          },
          (bytes) => {
            void onArrival(bytes);
            report();
            return Promise.resolve();
          },
        );
      } catch (error) {
        await writer.flush().catch(() => undefined); // no write may be left pending on a closed handle
        throw error;
      }
      await writer.flush();
      await part.truncate(index.size);
      await part.sync();
      sha256 = await whole.digest(part, index.size);
    } finally {
      await part.close();
    }
    if (sha256 !== document.artifact.sha256) {
      throw new OutpostError('DOWNLOAD_FAILED', `downloaded archive does not match the job document's sha256`, {
        retryable: true,
      });
    }
    await rename(join(dir, PART), done);
    return done;
  } catch (error) {
    throw downloadError(error, dir, true);
  } finally {
    // The log is a count for reports: a record it could not keep does not fail the download.
    await arrivalsLog
      .flush()
      .catch((error: unknown) => log.warn({ error: messageOf(error) }, 'arrivals log not fully written'))
      .finally(() => arrivals.close());
  }
}

/** Bytes fetched so far for a download directory (for status after a restart, before the download resumes). */
export { fetchedSoFar };
