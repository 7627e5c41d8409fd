import { mkdir, readdir, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { logger } from '../runtime/log.js';
import { readJson, writeFileAtomic, writeJsonAtomic } from './fsx.js';

const log = logger('agent.spool');

export interface SpoolEntry {
  readonly topic: string;
  readonly payload: string;
  readonly qos: 0 | 1;
}

const entrySchema = z.object({ topic: z.string(), payload: z.string(), qos: z.union([z.literal(0), z.literal(1)]) });
const metaSchema = z.object({ next: z.number().int().nonnegative(), dropped: z.number().int().nonnegative() });

export interface SpoolLimits {
  readonly maxEntries: number;
  readonly maxBytes: number; // bytes
}

/**
 * A bounded on-disk FIFO of messages waiting for the broker: reports and events survive restarts and outages. One
 * file per entry (`<seq>.json`, written atomically), so a crash loses nothing already spooled. When full, the
 * oldest entries go and `dropped` counts them (the status message reports it).
 */
export class Spool {
  private meta = { next: 0, dropped: 0 };
  private queue: { seq: number; bytes: number }[] = [];
  private bytes = 0;
  private flushing: Promise<number> | undefined;

  constructor(
    private readonly dir: string,
    private readonly limits: SpoolLimits,
  ) {}

  async open(): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    this.meta = (await readJson(join(this.dir, 'meta.json'), metaSchema)) ?? { next: 0, dropped: 0 };
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
   * Sends entries oldest first through `send`; each is removed only after `send` resolved (PUBACK for QoS 1).
   * Stops at the first failure (still offline) and keeps the rest. One flush at a time.
   */
  flush(send: (entry: SpoolEntry) => Promise<void>): Promise<number> {
    this.flushing ??= this.drain(send).finally(() => {
      this.flushing = undefined;
    });
    return this.flushing;
  }

  private async drain(send: (entry: SpoolEntry) => Promise<void>): Promise<number> {
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
      if (entry !== undefined) {
        try {
          await send(entry);
        } catch {
          break;
        }
      }
      await rm(path, { force: true });
      this.queue.shift();
      this.bytes -= head.bytes;
      sent++;
    }
    return sent;
  }
}
