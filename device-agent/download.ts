import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, readFile, rename, stat, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { OutpostError, fromFsError, messageOf } from '../runtime/errors.js';
import { logger } from '../runtime/log.js';
import {
  bitmapForBlocks,
  blockCount,
  blockLength,
  decodeDataBlock,
  decodeStreamRejected,
  encodeStreamMessage,
  maxBlocksPerRequest,
  parseBlockIndex,
  streamTopics,
  verifyBlock,
  type BlockIndex,
  type JobDocument,
  type StreamEncoding,
} from './protocol/index.js';
import type { Transport } from './transport/types.js';
import { writeFileAtomic } from './fsx.js';

const log = logger('agent.download');

export interface DownloadOptions {
  readonly transport: Transport;
  readonly thing: string;
  readonly document: JobDocument;
  /** `downloads/<jobId>/`: the partial file, the verified index and the arrivals log live here. */
  readonly dir: string;
  readonly encoding: StreamEncoding;
  /** Blocks in flight at once across requests: bounds memory to this many blocks. */
  readonly maxInFlightBlocks: number;
  /** A block not arrived this long after it was asked for is asked for again. */
  readonly requestTimeoutMs: number; // ms
  /** Consecutive timeouts with no new block before giving up (offline time does not count). */
  readonly maxStalls: number;
  readonly onProgress?: (progress: DownloadProgress) => void;
  readonly signal?: AbortSignal;
}

export interface DownloadProgress {
  readonly bytesTotal: number;
  /** Distinct verified bytes on disk. */
  readonly bytesReceived: number;
  /** Every block byte that arrived, duplicates and corrupt ones included, across restarts. */
  readonly bytesFetched: number;
}

const PART = 'artifact.part';
const DONE = 'artifact.tar.gz';
const INDEX = 'index.json';
/** One uint32 per arrival: how many block bytes came in. Appended without fsync: SIGKILL keeps the page cache. */
const ARRIVALS = 'arrivals.log';

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

async function sha256Of(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/**
 * Blocks already on disk: every block whose bytes in the partial file hash to the index's value. Content is the
 * record (no bitmap file to fall out of step with the data), so after SIGKILL or power loss nothing verified is
 * fetched again and nothing unverified is trusted.
 */
async function blocksOnDisk(file: FileHandle, index: BlockIndex): Promise<Set<number>> {
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

/**
 * Fetches one stream file over MQTT-based file delivery (developer guide, mqtt-based-file-delivery-in-devices):
 * GetStream requests by offset and bitmap, one `data` message per block. Used for the small index file (kept in
 * memory) and, through `downloadArtifact`, for the archive (written block by block to disk).
 */
/** A block that fails its hash this many times is not coming right: the source is broken, not the network. */
const MAX_BAD_ARRIVALS = 5;
/** InternalError rejections tolerated per fetch before the download fails. */
const MAX_INTERNAL_ERRORS = 3;

class StreamFetcher {
  private readonly pending = new Map<number, number>(); // block → deadline (ms)
  private readonly bad = new Map<number, number>(); // block → arrivals that failed their hash
  private stalls = 0;

  constructor(
    private readonly options: DownloadOptions,
    private readonly fileId: number,
    private readonly size: number,
    private readonly blockSize: number,
  ) {}

  async fetch(
    missing: Set<number>,
    accept: (block: number, bytes: Uint8Array) => Promise<boolean>,
    onArrival: (bytes: number) => Promise<void>,
  ): Promise<void> {
    const { transport, thing, document, encoding } = this.options;
    const streamId = document.artifact.streamId;
    const dataTopic = streamTopics.data(thing, streamId, encoding);
    const rejectedTopic = streamTopics.rejected(thing, streamId, encoding);
    const token = randomBytes(8).toString('hex');
    const perRequest = maxBlocksPerRequest(this.blockSize);
    let failure: OutpostError | undefined;
    let internalErrors = 0;
    let wake: (() => void) | undefined;
    const nudge = () => {
      wake?.();
      wake = undefined;
    };
    let chain = Promise.resolve();
    const off = transport.onMessage(({ topic, payload }) => {
      if (topic === rejectedTopic) {
        const rejected = decodeStreamRejected(encoding, payload);
        if (rejected.c !== undefined && rejected.c !== token) return;
        // InternalError may pass (the service's own trouble); anything else is about our request or the stream.
        if (rejected.o === 'InternalError' && ++internalErrors < MAX_INTERNAL_ERRORS) return;
        failure = new OutpostError(
          'DOWNLOAD_FAILED',
          `stream ${streamId} rejected our request: ${rejected.o} ${rejected.m}`,
          {
            details: { code: rejected.o },
          },
        );
        nudge();
        return;
      }
      if (topic !== dataTopic) return;
      // Handled in arrival order, one at a time: writes and the arrivals log stay consistent.
      chain = chain
        .then(async () => {
          let data;
          try {
            data = decodeDataBlock(encoding, payload);
          } catch (error) {
            log.warn({ error: messageOf(error) }, 'malformed data message ignored');
            return;
          }
          if (data.f !== this.fileId || (data.c !== undefined && data.c !== token)) return;
          await onArrival(data.p.length);
          if (!missing.has(data.i)) return; // a duplicate: counted, not needed
          if (await accept(data.i, data.p)) {
            missing.delete(data.i);
            this.pending.delete(data.i);
            this.stalls = 0;
          } else {
            const failures = (this.bad.get(data.i) ?? 0) + 1;
            this.bad.set(data.i, failures);
            if (failures >= MAX_BAD_ARRIVALS) {
              throw new OutpostError(
                'DOWNLOAD_FAILED',
                `stream ${streamId}: block ${data.i} of file ${this.fileId} failed its hash ${failures} times`,
              );
            }
            log.warn({ block: data.i, failures }, 'block failed its hash: asking again');
            this.pending.delete(data.i);
          }
          nudge();
        })
        .catch((error: unknown) => {
          failure = downloadError(error, this.options.dir, false);
          nudge();
        });
    });
    const offConnection = transport.onConnectionChange(() => nudge());
    try {
      await transport.subscribe([dataTopic, rejectedTopic], 1);
      while (missing.size > 0) {
        if (failure !== undefined) throw failure;
        if (this.options.signal?.aborted === true) throw new OutpostError('DEPLOYMENT_INTERRUPTED', 'download stopped');
        const now = Date.now();
        // Blocks whose request timed out go back to the wanted set; a round with only timeouts is a stall.
        let expired = 0;
        for (const [block, deadline] of this.pending) {
          if (deadline <= now) {
            this.pending.delete(block);
            expired++;
          }
        }
        if (expired > 0 && transport.connected && ++this.stalls > this.options.maxStalls) {
          throw new OutpostError(
            'DOWNLOAD_FAILED',
            `stream ${streamId}: no block arrived in ${this.options.maxStalls} attempts of ${this.options.requestTimeoutMs} ms`,
            {
              retryable: true,
            },
          );
        }
        if (transport.connected) await this.request(missing, perRequest, token);
        await new Promise<void>((resolve) => {
          wake = resolve;
          setTimeout(resolve, Math.min(this.options.requestTimeoutMs, 250));
        });
      }
      await chain;
      if (failure !== undefined) throw failure;
    } finally {
      off();
      offConnection();
      await transport.unsubscribe([dataTopic, rejectedTopic]).catch(() => undefined);
    }
  }

  /** Asks for missing blocks not already in flight, up to the in-flight cap, a GetStream per `perRequest` blocks. */
  private async request(missing: Set<number>, perRequest: number, token: string): Promise<void> {
    const { transport, thing, document, encoding } = this.options;
    const room = this.options.maxInFlightBlocks - this.pending.size;
    if (room <= 0) return;
    const wanted: number[] = [];
    for (const block of missing) {
      if (this.pending.has(block)) continue;
      wanted.push(block);
      if (wanted.length >= room) break;
    }
    wanted.sort((a, b) => a - b);
    for (let i = 0; i < wanted.length; i += perRequest) {
      const batch = wanted.slice(i, i + perRequest);
      const { offset, bitmap } = bitmapForBlocks(batch);
      const request = {
        c: token,
        ...(document.artifact.streamVersion === undefined ? {} : { s: document.artifact.streamVersion }),
        f: this.fileId,
        l: this.blockSize,
        o: offset,
        n: batch.length,
        b: bitmap,
      };
      const deadline = Date.now() + this.options.requestTimeoutMs;
      for (const block of batch) this.pending.set(block, deadline);
      try {
        await transport.publish(
          streamTopics.get(thing, document.artifact.streamId, encoding),
          encodeStreamMessage(encoding, request),
          { qos: 0 },
        );
      } catch {
        for (const block of batch) this.pending.delete(block); // offline: asked again on reconnect
        return;
      }
    }
  }
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

  let fetched = await fetchedSoFar(dir);
  const arrivals = await open(join(dir, ARRIVALS), 'a');
  const record = Buffer.alloc(4);
  const onArrival = async (bytes: number) => {
    record.writeUInt32LE(bytes);
    await arrivals.write(record);
    fetched += bytes;
  };
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
      await new StreamFetcher(options, document.artifact.fileId, index.size, index.blockSize).fetch(
        missing,
        async (block, bytes) => {
          if (!verifyBlock(index, block, bytes)) return false;
          await part.write(bytes, 0, bytes.length, block * index.blockSize);
          received += bytes.length;
          report();
          return true;
        },
        async (bytes) => {
          await onArrival(bytes);
          report();
        },
      );
      await part.truncate(index.size);
      await part.sync();
    } finally {
      await part.close();
    }
    if ((await sha256Of(join(dir, PART))) !== document.artifact.sha256) {
      throw new OutpostError('DOWNLOAD_FAILED', `downloaded archive does not match the job document's sha256`, {
        retryable: true,
      });
    }
    await rename(join(dir, PART), done);
    return done;
  } catch (error) {
    throw downloadError(error, dir, true);
  } finally {
    await arrivals.close();
  }
}

/** An error of the download as ours: a full disk is DISK_FULL (not a download problem), other IO DOWNLOAD_FAILED. */
function downloadError(error: unknown, dir: string, retryable: boolean): OutpostError {
  if (error instanceof OutpostError) return error;
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'ENOSPC' || code === 'EDQUOT') {
    return fromFsError(error, (error as NodeJS.ErrnoException).path ?? dir, 'write');
  }
  return new OutpostError('DOWNLOAD_FAILED', messageOf(error), { cause: error, retryable });
}

/** Bytes fetched so far for a download directory (for status after a restart, before the download resumes). */
export { fetchedSoFar };
