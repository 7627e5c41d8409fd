import { mkdir, readdir, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import * as z from 'zod';
import { errorCategory, isOutpostError } from '../../runtime/errors.js';
import { logger } from '../../runtime/log.js';
import { retry, type RetryPolicy } from '../../runtime/retry.js';
import { readJson, writeFileAtomic, writeJsonAtomic } from './atomic-files.js';

const log = logger('agent.spool');

export interface SpoolEntry {
  readonly topic: string;
  readonly payload: string;
  readonly qos: 0 | 1;
}

const entrySchema = z.object({ topic: z.string(), payload: z.string(), qos: z.union([z.literal(0), z.literal(1)]) });
const metaSchema = z.object({
  next: z.number().int().nonnegative(),
  dropped: z.number().int().nonnegative(),
  refused: z.number().int().nonnegative().default(0),
});

/** A message the broker did not take for a reason that may pass (quota, busy): tried this often, then the next flush. */
const DEFAULT_SEND_RETRY: RetryPolicy = Object.freeze({ minMs: 500, maxMs: 5_000, jitter: 0.3, maxAttempts: 3 });

export interface SpoolLimits {
  readonly maxEntries: number;
  readonly maxBytes: number; // bytes
}

/**
 * A bounded on-disk FIFO of messages waiting for the broker: reports and events survive restarts and outages. One
 * file per entry (`<seq>.json`, written atomically), so a crash loses nothing already spooled. When full, the
 * oldest entries go and `dropped` counts them (the status message reports it). A message the broker refuses for
 * good (a PUBACK failure such as 0x87 Not authorized) is removed and counted in `refused`, so one bad message never
 * holds back the ones behind it.
 */
export class Spool {
  private meta = { next: 0, dropped: 0, refused: 0 };
  private queue: { seq: number; bytes: number }[] = [];
  private bytes = 0;
  private flushing: Promise<number> | undefined;

  constructor(
    private readonly dir: string,
    private readonly limits: SpoolLimits,
    /** How one message is retried when the broker may take it later (runtime/retry.ts). */
    private readonly sendRetry: RetryPolicy = DEFAULT_SEND_RETRY,
  ) {}

  async open(): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    this.meta = (await readJson(join(this.dir, 'meta.json'), metaSchema)) ?? { next: 0, dropped: 0, refused: 0 };
    const names = (await readdir(this.dir)).filter((n) => /^\d+\.json$/.test(n));
    this.queue = [];
    for (const name of names) {
      this.queue.push({ seq: Number(name.slice(0, -5)), bytes: (await stat(join(this.dir, name))).size });
    }
    this.queue.sort((a, b) => a.seq - b.seq);
    this.bytes = this.queue.reduce((sum, e) => sum + e.bytes, 0);
    const last = this.queue[this.queue.length - 1];
    if (last !== undefined && last.seq >= this.meta.next) this.meta.next = last.seq + 1;
  }

  get size(): number {
    return this.queue.length;
  }

  get dropped(): number {
    return this.meta.dropped;
  }

  /** Messages the broker refused for good, removed unsent. */
  get refused(): number {
    return this.meta.refused;
  }

  async push(entry: SpoolEntry): Promise<void> {
    const text = JSON.stringify(entry);
    const bytes = Buffer.byteLength(text);
    const seq = this.meta.next++;
    await writeFileAtomic(join(this.dir, `${seq}.json`), text);
    this.queue.push({ seq, bytes });
    this.bytes += bytes;
    let dropped = 0;
    while ((this.queue.length > this.limits.maxEntries || this.bytes > this.limits.maxBytes) && this.queue.length > 1) {
      const oldest = this.queue.shift();
      if (oldest === undefined) break;
      this.bytes -= oldest.bytes;
      await rm(join(this.dir, `${oldest.seq}.json`), { force: true });
      dropped++;
    }
    if (dropped > 0) {
      this.meta.dropped += dropped;
      log.warn({ dropped, total: this.meta.dropped }, 'spool full: oldest entries dropped');
    }
    await writeJsonAtomic(join(this.dir, 'meta.json'), this.meta);
  }

  /**
   * Sends entries oldest first through `send`; each is removed only after `send` resolved (PUBACK for QoS 1). What
   * `send` throws decides (runtime/errors.ts categories): offline stops the flush at once and keeps the rest (the
   * reconnect flushes again); a retryable refusal is retried with backoff, then stops the flush; a fatal refusal
   * removes that entry (counted in `refused`) and goes on. Anything else stops and keeps. One flush at a time.
   */
  flush(send: (entry: SpoolEntry) => Promise<void>, options: { signal?: AbortSignal } = {}): Promise<number> {
    this.flushing ??= this.drain(send, options.signal).finally(() => {
      this.flushing = undefined;
    });
    return this.flushing;
  }

  private async drain(send: (entry: SpoolEntry) => Promise<void>, signal: AbortSignal | undefined): Promise<number> {
    let sent = 0;
    while (this.queue.length > 0) {
      const head = this.queue[0];
      if (head === undefined) break;
      const path = join(this.dir, `${head.seq}.json`);
      let entry: SpoolEntry | undefined;
      try {
        entry = entrySchema.parse(JSON.parse(await readFile(path, 'utf8')));
      } catch (error) {
        log.warn({ path, error }, 'unreadable spool entry skipped');
      }
      let delivered = entry !== undefined;
      if (entry !== undefined) {
        const message = entry;
        const last = { refused: false }; // the broker said no for good (not: the retries ran out)
        const attempt = () =>
          send(message).catch((error: unknown) => {
            last.refused = isOutpostError(error) && errorCategory(error) === 'fatal';
            throw error;
          });
        try {
          await retry(attempt, { policy: this.sendRetry, signal, network: 'stop' });
        } catch (error) {
          if (signal?.aborted === true || !last.refused || !isOutpostError(error)) break;
          this.meta.refused++;
          log.error(
            { topic: message.topic, code: error.code, error: error.message },
            'broker refused a spooled message; removed',
          );
          await writeJsonAtomic(join(this.dir, 'meta.json'), this.meta);
          delivered = false;
        }
      }
      await rm(path, { force: true });
      this.queue.shift();
      this.bytes -= head.bytes;
      if (delivered) sent++;
    }
    return sent;
  }
}
