import { OutpostError, isOutpostError, messageOf } from '../../errors.js';
import { logger } from '../../log.js';
import type { Feeds, Outputs } from '../../model/model.js';
import { kserveDatatype } from '../../tensor/json.js';
import {
  checkCaptureKey,
  encodeLine,
  inlineTensor,
  npyTensor,
  sealBytes,
  snapshotTensor,
  tensorBytes,
  type CaptureTensor,
  type TensorSnapshot,
} from './format.js';
import { CaptureDirectory, sideFile, type EncodedRecord, type SealedFile } from './files.js';
import type { InferenceEvent, ServiceObserver } from '../serving/service.js';

export { readCapture, readCaptureKey, readCaptureTensor, type CaptureRecord, type CaptureTensor } from './format.js';
export type { SealedFile } from './files.js';

const log = logger('server.capture');

export interface CaptureOptions {
  readonly dir: string;
  /** Share of production calls captured, in percent (0 = off, 100 = all). */
  readonly samplePercent: number;
  /** A file is sealed (closed, handed to the uploader) before the next record would take it past this; bytes, side files included. */
  readonly maxFileBytes: number;
  /** While the directory holds more than this, the oldest sealed files are deleted and counted; bytes. */
  readonly maxTotalBytes: number;
  /** Tensors base64 in the line, or `.npy` side files next to it (numpy-readable, no base64 inflation). */
  readonly tensors: 'inline' | 'files';
  /** AES-256-GCM key (32 bytes): every line and side file is encrypted at rest. */
  readonly encryptionKey?: Buffer;
  /** Records waiting to be written; beyond this, or `maxQueueBytes`, a sampled call is dropped and counted. */
  readonly maxQueue?: number;
  /** Tensor bytes waiting to be written (the queue holds copies). */
  readonly maxQueueBytes?: number;
  /** A file open this long is sealed at its next record or `sealedFiles()`, so quiet devices still upload; seconds. */
  readonly maxFileAgeSeconds?: number;
  /** Uniform [0, 1) source for sampling; tests pass a seeded one. */
  readonly random?: () => number;
  /** Epoch milliseconds, for record timestamps and file age; tests pass a fake clock. */
  readonly now?: () => number;
}

export const CAPTURE_DEFAULTS = Object.freeze({
  maxQueue: 64, // records
  maxQueueBytes: 16 * 1024 * 1024, // bytes
  maxFileAgeSeconds: 300, // seconds
});

export interface CaptureStats {
  /** Calls the sampler picked. */
  readonly sampled: number;
  readonly written: number;
  /** Picked, but the queue was full: dropped without blocking the call. */
  readonly droppedQueueFull: number;
  /** A single record larger than `maxFileBytes`. */
  readonly droppedTooLarge: number;
  /** Records in files deleted to stay under `maxTotalBytes` before they were uploaded. */
  readonly droppedByCap: number;
  readonly filesDeleted: number;
  /** Records written to a file that was then deleted from under the writer (e.g. the directory was emptied). */
  readonly lost: number;
  /** Picked records that failed to write (disk full, directory unwritable); the writer keeps going. */
  readonly writeErrors: number;
  readonly queued: number;
  readonly totalBytes: number;
}

interface Pending {
  readonly ts: number;
  readonly model: string;
  readonly version: string;
  readonly latencyMs: number;
  readonly inputs: readonly (readonly [string, TensorSnapshot])[];
  readonly outputs: readonly (readonly [string, TensorSnapshot])[];
  readonly error?: { code: string; message: string };
  readonly bytes: number;
}

function bytesOf(tensors: Feeds | Outputs | undefined): number {
  let n = 0;
  for (const t of Object.values(tensors ?? {})) n += tensorBytes(t);
  return n;
}

/**
 * SageMaker's data capture, on the device: a sampled share of production calls (inputs, outputs, latency, error)
 * written as JSON lines to size-capped, rotating files (docs/serving-operations.md). The observer only samples and
 * copies; a bounded queue and one writer loop do the IO, so a slow disk drops captures (counted) instead of
 * slowing the server or growing its memory.
 */
export class CaptureWriter {
  readonly observer: ServiceObserver = { onInference: (event) => this.offer(event) };
  private readonly files: CaptureDirectory;
  private readonly key: Buffer | undefined;
  private readonly random: () => number;
  private readonly now: () => number;
  private readonly maxQueue: number;
  private readonly maxQueueBytes: number;
  private readonly queue: Pending[] = [];
  private queueBytes = 0;
  private draining: Promise<void> | undefined;
  /** Directory operations run one at a time: the writer loop, sealing and uploads' deletions never interleave. */
  private lock: Promise<unknown> = Promise.resolve();
  private closed = false;
  private boost: { readonly percent: number; readonly until: number } | undefined;
  private failing = false;
  private readonly counts = { sampled: 0, written: 0, droppedQueueFull: 0, droppedTooLarge: 0, writeErrors: 0 };

  constructor(private readonly options: CaptureOptions) {
    const { samplePercent, maxFileBytes, maxTotalBytes } = options;
    if (!(samplePercent >= 0 && samplePercent <= 100))
      throw new OutpostError('INVALID_ARGUMENT', `capture samplePercent ${samplePercent} is not within 0–100`);
    if (!(maxFileBytes > 0 && maxTotalBytes >= maxFileBytes)) {
      throw new OutpostError(
        'INVALID_ARGUMENT',
        `capture needs 0 < maxFileBytes (${maxFileBytes}) ≤ maxTotalBytes (${maxTotalBytes})`,
      );
    }
    this.key = options.encryptionKey === undefined ? undefined : checkCaptureKey(options.encryptionKey);
    this.random = options.random ?? Math.random;
    this.now = options.now ?? Date.now;
    this.maxQueue = options.maxQueue ?? CAPTURE_DEFAULTS.maxQueue;
    this.maxQueueBytes = options.maxQueueBytes ?? CAPTURE_DEFAULTS.maxQueueBytes;
    const maxFileAgeMs = (options.maxFileAgeSeconds ?? CAPTURE_DEFAULTS.maxFileAgeSeconds) * 1000;
    this.files = new CaptureDirectory(options.dir, { maxFileBytes, maxTotalBytes, maxFileAgeMs }, this.now);
  }

  /** Creates the directory and takes over files a previous run left (as sealed). The first write opens it too. */
  open(): Promise<void> {
    return this.files.open();
  }

  stats(): CaptureStats {
    return {
      ...this.counts,
      droppedByCap: this.files.dropped.records,
      filesDeleted: this.files.dropped.files,
      lost: this.files.dropped.lost,
      queued: this.queue.length,
      totalBytes: this.files.totalBytes,
    };
  }

  /** On the request path: one draw, and for the sampled few a copy of the tensors. Never awaits, never throws. */
  /**
   * Samples at `percent` (when higher than the configured rate) until `seconds` from now: what the drift monitor asks
   * for on an alarm, so the calls that explain the drift are kept.
   */
  raiseSampling(percent: number, seconds: number): void {
    if (!(percent >= 0 && percent <= 100) || !(seconds > 0))
      throw new OutpostError('INVALID_ARGUMENT', `capture boost ${percent} % for ${seconds} s is out of range`);
    this.boost = { percent, until: this.now() + seconds * 1000 };
  }

  /** The sample rate in force now (percent). */
  samplePercent(): number {
    const boost = this.boost;
    if (boost !== undefined && this.now() >= boost.until) this.boost = undefined;
    return Math.max(this.options.samplePercent, this.boost?.percent ?? 0);
  }

  private offer(event: InferenceEvent): void {
    if (this.closed) return;
    const percent = this.boost === undefined ? this.options.samplePercent : this.samplePercent();
    if (percent <= 0 || this.random() * 100 >= percent) return;
    this.counts.sampled++;
    const bytes = bytesOf(event.feeds) + bytesOf(event.outputs);
    if (this.queue.length >= this.maxQueue || this.queueBytes + bytes > this.maxQueueBytes) {
      this.counts.droppedQueueFull++;
      return;
    }
    const error = event.error;
    this.queue.push({
      ts: this.now(),
      model: event.name,
      version: event.version,
      latencyMs: event.ms,
      inputs: Object.entries(event.feeds).map(([name, t]) => [name, snapshotTensor(t)] as const),
      outputs: Object.entries(event.outputs ?? {}).map(([name, t]) => [name, snapshotTensor(t)] as const),
      ...(error === undefined
        ? {}
        : { error: { code: isOutpostError(error) ? error.code : 'INTERNAL', message: messageOf(error) } }),
      bytes,
    });
    this.queueBytes += bytes;
    this.draining ??= this.drain();
  }

  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.lock.then(fn, fn);
    this.lock = run.catch(() => undefined);
    return run;
  }

  /**
   * Writes the queue until it is empty. `draining` is cleared in the same synchronous step that finds the queue
   * empty: cleared in a later `.finally()`, a record offered in between would wait for the next call's drain.
   */
  private async drain(): Promise<void> {
    await Promise.resolve(); // off the caller's stack, and after `draining` is set
    try {
      for (let next = this.queue.shift(); next !== undefined; next = this.queue.shift()) {
        this.queueBytes -= next.bytes;
        await this.write(next);
      }
    } finally {
      this.draining = undefined;
    }
  }

  private async write(pending: Pending): Promise<void> {
    try {
      const written = await this.exclusive(() => this.files.append((seq, record) => this.encode(pending, seq, record)));
      if (written) this.counts.written++;
      else this.counts.droppedTooLarge++;
      this.failing = false;
    } catch (error) {
      this.counts.writeErrors++;
      // Once per run of failures (a full disk fails every write); the count carries the rest.
      if (!this.failing) log.warn({ error: messageOf(error), dir: this.options.dir }, 'capture write failed');
      this.failing = true;
    }
  }

  private encode(pending: Pending, seq: number, record: number): EncodedRecord {
    const sides: { name: string; bytes: Uint8Array }[] = [];
    const tensors = (list: Pending['inputs'], side: 'in' | 'out'): Record<string, CaptureTensor> => {
      const out: Record<string, CaptureTensor> = {};
      list.forEach(([name, t], index) => {
        const npy = this.options.tensors === 'files' ? npyTensor(t) : undefined;
        if (npy === undefined) {
          out[name] = inlineTensor(t);
          return;
        }
        const file = sideFile(seq, record, side, index, this.key !== undefined);
        sides.push({ name: file, bytes: this.key === undefined ? npy : sealBytes(this.key, npy) });
        out[name] = { datatype: kserveDatatype(t.type), shape: [...t.dims], file };
      });
      return out;
    };
    const line = encodeLine(
      {
        ts: new Date(pending.ts).toISOString(),
        model: pending.model,
        version: pending.version,
        latencyMs: pending.latencyMs,
        inputs: tensors(pending.inputs, 'in'),
        outputs: tensors(pending.outputs, 'out'),
        ...(pending.error === undefined ? {} : { error: pending.error }),
      },
      this.key,
    );
    return { sides, line };
  }

  /** Seals the open file now (shutdown, tests, an operator's "upload what you have"). */
  rotate(): Promise<void> {
    return this.exclusive(() => this.files.seal());
  }

  /** Closed files for the uploader: oldest first, each file's tensors before the line file that names them. */
  sealedFiles(): Promise<SealedFile[]> {
    return this.exclusive(async () => {
      await this.files.open();
      await this.files.sealIfOld();
      return this.files.sealedFiles();
    });
  }

  /** Deletes an uploaded file (only sealed files; one the cap already deleted is fine). */
  markUploaded(file: string): Promise<void> {
    return this.exclusive(() => this.files.remove(file));
  }

  /** Resolves once everything queued so far is written. */
  async flush(): Promise<void> {
    while (this.draining !== undefined) await this.draining;
    await this.exclusive(() => Promise.resolve());
  }

  /** Stops sampling, writes what is queued and seals the open file. */
  async close(): Promise<void> {
    this.closed = true;
    await this.flush();
    await this.rotate();
  }
}
