import { createHash, type Hash } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';

/**
 * The disk side of a block download (download.ts), shaped so that the arrival loop never waits on the disk:
 *
 * - `ArrivalsLog`: one uint32 per arrival (how many block bytes came in), appended in batches: one write per
 *   `batch` arrivals, or `lingerMs` after the first record of a batch that does not fill (a stalled stream), and
 *   whatever is left when the fetch ends. Without fsync: SIGKILL keeps the page cache, so a SIGKILL loses only the
 *   records not yet handed to the kernel (fewer than a batch), and the count it feeds (bytes fetched, a report) is
 *   then low by at most that many blocks.
 * - `BlockWriter`: verified blocks written by position, up to `depth` writes in flight while the next blocks are
 *   handled. A write that fails fails the next `write` or `flush`. A block half-written at SIGKILL is found by
 *   content on resume (download.ts, blocksOnDisk: it fails its hash) and fetched again: never trusted.
 * - `InOrderHash`: the whole file's sha256 computed as blocks arrive, so the finished file need not be read back
 *   whole. Blocks that arrive ahead of their turn wait in memory (at most `maxHeld`); past that, or after a resume,
 *   it stops where it is and `digest` reads the rest from disk.
 */
export class ArrivalsLog {
  private records: Buffer;
  private count = 0;
  private writing: Promise<void> = Promise.resolve();
  private failure: Error | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly handle: FileHandle,
    private readonly batch: number,
    private readonly lingerMs: number, // ms
  ) {
    this.records = Buffer.allocUnsafe(4 * batch);
  }

  /** Records one arrival of `bytes`; hands a full batch to the kernel (not awaited: `flush` waits for it). */
  record(bytes: number): void {
    this.records.writeUInt32LE(bytes, 4 * this.count++);
    if (this.count >= this.batch) this.write();
    else this.timer ??= setTimeout(() => this.write(), this.lingerMs);
  }

  /** Everything recorded so far written (or the first write's error). */
  async flush(): Promise<void> {
    if (this.count > 0) this.write();
    await this.writing;
    if (this.failure !== undefined) throw this.failure;
  }

  private write(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.count === 0) return;
    const full = this.records.subarray(0, 4 * this.count);
    this.records = Buffer.allocUnsafe(4 * this.batch);
    this.count = 0;
    this.writing = this.writing
      .then(() => this.handle.write(full))
      .then(
        () => undefined,
        (error: unknown) => {
          this.failure ??= asError(error);
        },
      );
  }
}

export class BlockWriter {
  private readonly pending = new Set<Promise<void>>();
  private failure: Error | undefined;

  constructor(
    private readonly handle: FileHandle,
    private readonly blockSize: number,
    private readonly depth: number,
  ) {}

  /** Starts writing block `block`; waits only while `depth` writes are already in flight. */
  async write(block: number, bytes: Uint8Array): Promise<void> {
    this.check();
    while (this.pending.size >= this.depth) await Promise.race(this.pending);
    this.check();
    const done: Promise<void> = this.handle
      .write(bytes, 0, bytes.length, block * this.blockSize)
      .then(
        () => undefined,
        (error: unknown) => {
          this.failure ??= asError(error);
        },
      )
      .finally(() => this.pending.delete(done));
    this.pending.add(done);
  }

  /** Every write started so far has landed (or the first one's error). */
  async flush(): Promise<void> {
    await Promise.all(this.pending);
    this.check();
  }

  private check(): void {
    if (this.failure !== undefined) throw this.failure;
  }
}

export class InOrderHash {
  private readonly hash: Hash = createHash('sha256');
  /** Blocks before this one are in the hash. */
  private next = 0;
  private readonly held = new Map<number, Uint8Array>();
  private stopped = false;

  constructor(
    private readonly blockSize: number,
    private readonly maxHeld: number,
  ) {}

  /** Block `block` as verified and written: hashed now if it is next, else held until it is (within the bound). */
  add(block: number, bytes: Uint8Array): void {
    if (this.stopped || block < this.next) return;
    if (block > this.next) {
      if (this.held.size >= this.maxHeld) this.stop();
      else this.held.set(block, bytes);
      return;
    }
    this.hash.update(bytes);
    this.next++;
    for (let held = this.held.get(this.next); held !== undefined; held = this.held.get(this.next)) {
      this.held.delete(this.next);
      this.hash.update(held);
      this.next++;
    }
  }

  /** No more blocks will be added in order (a resume: blocks already on disk never arrive). */
  stop(): void {
    this.stopped = true;
    this.held.clear();
  }

  /** The file's sha256: what was hashed in order, then the rest of `file` (`size` bytes) read from disk. */
  async digest(file: FileHandle, size: number): Promise<string> {
    this.stop();
    const buffer = Buffer.allocUnsafe(Math.max(this.blockSize, 1 << 16));
    for (let at = this.next * this.blockSize; at < size;) {
      const { bytesRead } = await file.read(buffer, 0, Math.min(buffer.length, size - at), at);
      if (bytesRead === 0) break; // shorter than `size`: the digest will not match
      this.hash.update(buffer.subarray(0, bytesRead));
      at += bytesRead;
    }
    return this.hash.digest('hex');
  }
}

/** What a write rejected with, as an Error (fs errors are; anything else is wrapped). */
function asError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}
