import { createHash } from 'node:crypto';
import { open, type FileHandle } from 'node:fs/promises';
import { OutpostError, fromFsError, messageOf } from '../../runtime/errors.js';
import { logger } from '../../runtime/log.js';
import { retry, type RetryPolicy } from '../../runtime/retry.js';
import type { SealedFile } from '../../runtime/server/index.js';
import { IOT_CORE_MAX_MESSAGE_BYTES, outpostTopics } from '../protocol/index.js';
import type { Spool, SpoolEntry } from '../storage/spool.js';
import type { Transport } from '../transport/types.js';

const log = logger('agent.capture-upload');

/** What the uploader needs of a CaptureWriter. */
export interface CaptureSource {
  sealedFiles(): Promise<readonly SealedFile[]>;
  markUploaded(path: string): Promise<void>;
}

/**
 * One message on `outpost/things/{thing}/capture` (docs/serving-operations.md, "Upload"): chunk `seq` (from 0) of
 * `file`, which is `bytes` long; `last` and the file's `sha256` on the final chunk.
 */
export interface CaptureChunk {
  readonly file: string;
  readonly seq: number;
  readonly last: boolean;
  /** The whole file's size, on every chunk (the receiver can preallocate and check). */
  readonly bytes: number;
  /** Hex SHA-256 of the whole file, on the last chunk only: the receiver checks what it reassembled. */
  readonly sha256?: string;
  /** base64 of the chunk's bytes (the file's bytes as on disk: encrypted files stay encrypted). */
  readonly data: string;
}

export interface CaptureUploadOptions {
  readonly thing: string;
  readonly capture: CaptureSource;
  /** The agent's spool: chunks travel with its other messages, in order, and survive restarts once spooled. */
  readonly spool: Spool;
  /** Publishes one spooled message: the agent's `transport.publish(topic, payload, { qos })` (QoS 1, PUBACK). */
  readonly send: (entry: SpoolEntry) => Promise<void>;
  /** Whether the broker is reachable (`transport.connected`): nothing is read or spooled offline. */
  readonly connected: () => boolean;
  /**
   * The transport's `onConnectionChange`: with it, `start()` also runs a pass on every reconnect (without it, the
   * next pass is at most `intervalSeconds` away, or call `kick()` on connect).
   */
  readonly onConnectionChange?: Transport['onConnectionChange'];
  /** File bytes per message: base64 makes 4/3 of it, so 64 KiB is an 87 KB message, under IoT Core's 128 KB. */
  readonly chunkBytes?: number;
  /**
   * Chunks spooled before the spool must drain: capture never holds more than this many messages of the spool
   * (keep it × ~88 KB under the spool's `maxBytes`, or capture would push deployment events out).
   */
  readonly chunksPerFlush?: number;
  /** Seconds between upload passes once `start()`ed. */
  readonly intervalSeconds?: number;
  /** A pass that failed for a reason that may pass is tried again with this backoff (runtime/retry.ts). */
  readonly retry?: RetryPolicy;
}

export const CAPTURE_UPLOAD_DEFAULTS = Object.freeze({
  chunkBytes: 64 * 1024, // bytes of file per message
  chunksPerFlush: 8, // messages
  intervalSeconds: 60, // seconds
  retry: { minMs: 5_000, maxMs: 60_000, jitter: 0.3, maxAttempts: 3 } satisfies RetryPolicy,
});

/** JSON framing around the base64 data, at most: file name (≤ 40), numbers, the sha256 (64), the keys. */
const FRAMING_BYTES = 256; // bytes

/** Hex SHA-256 of an open file's first `size` bytes, read in `chunk`-sized pieces. */
async function sha256Of(handle: FileHandle, size: number, chunk: number): Promise<string> {
  const hash = createHash('sha256');
  const buffer = Buffer.alloc(chunk);
  for (let offset = 0; offset < size;) {
    const { bytesRead } = await handle.read(buffer, 0, Math.min(chunk, size - offset), offset);
    if (bytesRead === 0) break;
    hash.update(buffer.subarray(0, bytesRead));
    offset += bytesRead;
  }
  return hash.digest('hex');
}

/**
 * Moves sealed capture files to the fleet over MQTT through the agent's spool: each file in chunks of
 * `chunkBytes`, one message per chunk, deleted only after its last chunk is spooled. Offline it does nothing; a
 * pass stops as soon as the spool cannot drain (the broker went away) and the next pass (a reconnect, or the
 * interval) resumes at the next chunk. Delivery is at least once: after a restart a partly spooled file is sent
 * again from its first chunk, so the receiver keys chunks by (thing, file, seq).
 */
export class CaptureUploader {
  private readonly chunkBytes: number;
  private readonly chunksPerFlush: number;
  /** Next chunk to spool, per file path, for files partly spooled in this process. */
  private readonly progress = new Map<string, number>();
  private running: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private unsubscribe: (() => void) | undefined;
  /** Aborted by `stop()`: a pass backing off ends at once. */
  private readonly stopping = new AbortController();

  constructor(private readonly options: CaptureUploadOptions) {
    this.chunkBytes = options.chunkBytes ?? CAPTURE_UPLOAD_DEFAULTS.chunkBytes;
    this.chunksPerFlush = options.chunksPerFlush ?? CAPTURE_UPLOAD_DEFAULTS.chunksPerFlush;
    const message = 4 * Math.ceil(this.chunkBytes / 3) + FRAMING_BYTES;
    if (!Number.isInteger(this.chunkBytes) || this.chunkBytes <= 0 || message > IOT_CORE_MAX_MESSAGE_BYTES) {
      throw new OutpostError(
        'INVALID_ARGUMENT',
        `capture chunkBytes ${this.chunkBytes} makes ${message}-byte messages; IoT Core takes at most ${IOT_CORE_MAX_MESSAGE_BYTES}`,
      );
    }
    if (!Number.isInteger(this.chunksPerFlush) || this.chunksPerFlush <= 0)
      throw new OutpostError(
        'INVALID_ARGUMENT',
        `capture chunksPerFlush ${this.chunksPerFlush} is not a positive integer`,
      );
  }

  /** Upload passes every `intervalSeconds` and (given `onConnectionChange`) on every reconnect. */
  start(): void {
    const seconds = this.options.intervalSeconds ?? CAPTURE_UPLOAD_DEFAULTS.intervalSeconds;
    this.timer ??= setInterval(() => void this.kick(), seconds * 1000);
    this.timer.unref();
    this.unsubscribe ??= this.options.onConnectionChange?.((connected) => {
      if (connected) void this.kick();
    });
  }

  /** No more passes started by the timer or reconnects (`idle()` waits for a running one). */
  stop(): void {
    this.stopping.abort();
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
    this.unsubscribe?.();
    this.unsubscribe = undefined;
  }

  /** Resolves when no pass is running (after `stop()`, before closing the capture writer). */
  async idle(): Promise<void> {
    await this.running;
  }

  /**
   * One pass, unless one is running (then that one). Never rejects: a failure that may pass is tried again with
   * backoff; offline, or one that will not pass, waits for the next reconnect or interval.
   */
  kick(): Promise<void> {
    const signal = this.stopping.signal;
    this.running ??= retry(() => this.pass(), {
      policy: this.options.retry ?? CAPTURE_UPLOAD_DEFAULTS.retry,
      signal,
      network: 'stop',
      onRetry: ({ error, delayMs }) =>
        log.warn({ error: messageOf(error), delayMs }, 'capture upload pass failed; retrying'),
    })
      .then(
        () => undefined,
        (error: unknown) => {
          if (!signal.aborted) log.warn({ error: messageOf(error) }, 'capture upload pass failed');
        },
      )
      .finally(() => {
        this.running = undefined;
      });
    return this.running;
  }

  private async pass(): Promise<void> {
    if (!this.options.connected() || !(await this.drained())) return;
    for (const file of await this.options.capture.sealedFiles()) {
      if (!(await this.uploadFile(file))) return;
    }
  }

  /** Sends what the spool holds; true when it is empty (everything reached the broker). */
  private async drained(): Promise<boolean> {
    await this.options.spool.flush(this.options.send, { signal: this.stopping.signal });
    return this.options.spool.size === 0;
  }

  /** Spools the rest of `file`'s chunks; false when the spool stopped draining (stop the pass). */
  private async uploadFile(file: SealedFile): Promise<boolean> {
    let handle: FileHandle;
    try {
      handle = await open(file.path, 'r');
    } catch (error) {
      // Deleted meanwhile (the capture directory's size cap, an operator): nothing to send; forget it.
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
        this.progress.delete(file.path);
        await this.options.capture.markUploaded(file.path);
        return true;
      }
      throw fromFsError(error, file.path, 'read');
    }
    try {
      const size = (await handle.stat()).size;
      const chunks = Math.max(1, Math.ceil(size / this.chunkBytes));
      const sha256 = await sha256Of(handle, size, this.chunkBytes);
      let seq = this.progress.get(file.path) ?? 0;
      let pushed = 0;
      const buffer = Buffer.alloc(this.chunkBytes);
      while (seq < chunks) {
        const { bytesRead } = await handle.read(buffer, 0, this.chunkBytes, seq * this.chunkBytes);
        const last = seq === chunks - 1;
        const chunk: CaptureChunk = {
          file: file.name,
          seq,
          last,
          bytes: size,
          ...(last ? { sha256 } : {}),
          data: buffer.subarray(0, bytesRead).toString('base64'),
        };
        await this.options.spool.push({
          topic: outpostTopics.capture(this.options.thing),
          payload: JSON.stringify(chunk),
          qos: 1,
        });
        this.progress.set(file.path, ++seq);
        if (++pushed % this.chunksPerFlush === 0 && seq < chunks && !(await this.drained())) return false;
      }
    } finally {
      await handle.close();
    }
    // Every chunk is in the spool (on disk): the spool owns delivery from here.
    this.progress.delete(file.path);
    await this.options.capture.markUploaded(file.path);
    return this.drained();
  }
}
