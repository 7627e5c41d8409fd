import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, readFile, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { OutpostError, fromFsError, messageOf } from '../runtime/errors.js';
import { logger } from '../runtime/log.js';
import { blockCount, blockLength, verifyBlock, type BlockIndex } from './protocol/index.js';
import { ArrivalsLog, BlockWriter, InOrderHash } from './block-writes.js';
import { StreamFetcher, type DownloadOptions } from './stream-fetcher.js';

const log = logger('agent.download');

/**
 * The block engine both stream layouts share (download.ts: the archive; download-files.ts: one stream file per
 * artifact file): a stream file fetched into a part file by position, resumably, each block checked against its
 * hash, written while the next ones arrive, and hashed whole as it arrives (block-writes.ts), with one arrivals log
 * per download directory. docs/delivery.md has the measurements behind the constants.
 */
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
export async function fetchedSoFar(dir: string): Promise<number> {
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

/** A download directory's arrivals log: `fetched` counts every block byte that arrived, over all runs. */
export class Arrivals {
  private constructor(
    private readonly handle: FileHandle,
    private readonly batched: ArrivalsLog,
    public fetched: number,
  ) {}

  static async open(dir: string): Promise<Arrivals> {
    const fetched = await fetchedSoFar(dir);
    const handle = await open(join(dir, ARRIVALS), 'a');
    return new Arrivals(handle, new ArrivalsLog(handle, ARRIVALS_BATCH, ARRIVALS_LINGER_MS), fetched);
  }

  record(bytes: number): void {
    this.batched.record(bytes);
    this.fetched += bytes;
  }

  /** The log is a count for reports: a record it could not keep does not fail the download. */
  async close(): Promise<void> {
    await this.batched
      .flush()
      .catch((error: unknown) => log.warn({ error: messageOf(error) }, 'arrivals log not fully written'))
      .finally(() => this.handle.close());
  }
}

/** Progress hooks of one fetch: a block arrived (counted in `Arrivals`), or `bytes` were verified and written. */
export interface FetchHooks {
  readonly arrived: () => void;
  readonly stored: (bytes: number) => void;
}

/** A small stream file (an index) fetched whole into memory; its caller checks it against the job document. */
export async function fetchWhole(
  options: DownloadOptions,
  fileId: number,
  size: number,
  blockSize: number,
  arrivals: Arrivals,
  hooks: Pick<FetchHooks, 'arrived'>,
): Promise<Buffer> {
  const buffer = Buffer.alloc(size);
  const missing = Array.from({ length: blockCount(size, blockSize) }, (_, i) => i);
  await new StreamFetcher(options, fileId, size, blockSize).fetch(
    missing,
    (block, bytes) => {
      if (bytes.length !== blockLength(size, blockSize, block)) return Promise.resolve(false);
      buffer.set(bytes, block * blockSize);
      return Promise.resolve(true);
    },
    (bytes) => {
      arrivals.record(bytes);
      hooks.arrived();
      return Promise.resolve();
    },
  );
  return buffer;
}

/**
 * A stream's index file (the archive's block index, the files layout's delivery index): the copy at `path` when it
 * still matches the job document's indexSha256 (`cached`: checked when it was kept), else fetched whole and checked
 * against it. The caller checks what the index says and keeps a fetched one at `path`.
 */
export async function fetchStreamIndex(
  options: DownloadOptions,
  path: string,
  what: string,
  arrivals: Arrivals,
  arrived: () => void,
): Promise<{ buffer: Buffer; cached: boolean }> {
  const { indexSize, indexSha256, indexFileId, blockSize, streamId } = options.document.artifact;
  const cached = await readFile(path).catch(() => undefined); // absent or unreadable: fetched
  if (cached !== undefined && sha256(cached) === indexSha256) return { buffer: cached, cached: true };
  const buffer = await fetchWhole(options, indexFileId, indexSize, blockSize, arrivals, { arrived });
  if (sha256(buffer) !== indexSha256) {
    throw new OutpostError(
      'DOWNLOAD_FAILED',
      `${what} of stream ${streamId} does not match the job document's indexSha256`,
      { retryable: true },
    );
  }
  return { buffer, cached: false };
}

function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/**
 * Stream file `fileId` into `partPath` (created if absent), as `index` describes it: blocks already on disk that
 * match their hashes are kept, the rest fetched, each checked before it is written; the part is then truncated to
 * its size and synced. Returns its sha256 (computed as blocks arrived where it could, else read back): the caller
 * compares it with the signed value before renaming the part into place.
 */
export async function fetchToPart(
  options: DownloadOptions,
  fileId: number,
  index: BlockIndex,
  partPath: string,
  arrivals: Arrivals,
  hooks: FetchHooks,
): Promise<string> {
  await (await open(partPath, 'a')).close();
  const part = await open(partPath, 'r+');
  try {
    const have = await blocksOnDisk(part, index);
    hooks.stored([...have].reduce((sum, b) => sum + blockLength(index.size, index.blockSize, b), 0));
    if (have.size > 0) log.info({ fileId, blocks: have.size, of: index.blocks.length }, 'resuming download');
    const missing = index.blocks.map((_, i) => i).filter((b) => !have.has(b));
    const writer = new BlockWriter(part, index.blockSize, WRITE_DEPTH);
    const whole = new InOrderHash(index.blockSize, Math.min(HOLD_BLOCKS, options.maxInFlightBlocks));
    if (have.size > 0) whole.stop(); // blocks on disk never arrive: the digest reads the file
    try {
      await new StreamFetcher(options, fileId, index.size, index.blockSize).fetch(
        missing,
        async (block, bytes) => {
          if (!verifyBlock(index, block, bytes)) return false;
          await writer.write(block, bytes);
          whole.add(block, bytes);
          hooks.stored(bytes.length);
          return true;
        },
        (bytes) => {
          arrivals.record(bytes);
          hooks.arrived();
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
    return await whole.digest(part, index.size);
  } finally {
    await part.close();
  }
}
