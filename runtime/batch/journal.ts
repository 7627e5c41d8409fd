import { closeSync, fsyncSync, ftruncateSync, openSync, readFileSync, writeSync } from 'node:fs';
import { OutpostError, fromFsError } from '../errors.js';

/**
 * The output file of `outpost batch` is its own journal: one JSON line per finished input, appended as it finishes
 * and fsynced in batches. After a SIGKILL the file holds every line written before it (the page cache survives the
 * process; fsync guards against a host crash for all but the last interval), the last possibly torn; `--resume`
 * discards a torn last line, skips every input already named in the file, and appends the rest.
 */
export interface JournalOptions {
  /** Lines between two fsyncs. */
  readonly syncEvery?: number; // lines
  /** Longest a written line waits for its fsync. */
  readonly syncIntervalMs?: number; // ms
}

export const JOURNAL_DEFAULTS = Object.freeze({
  syncEvery: 64, // lines: one fsync per few batches, not one per line
  syncIntervalMs: 1000, // ms: a slow model still makes its lines durable every second
} satisfies JournalOptions);

/** What an existing journal already records, by input name: whether it ended in an error (and its code). */
export interface JournalState {
  readonly done: ReadonlyMap<string, { readonly error?: string }>;
  /** Bytes of a torn last line that were discarded (0 when the file ended cleanly). */
  readonly discardedBytes: number;
}

/** Parses a journal's text; `valid` is the length of its well-formed prefix (through the last newline). */
export function parseJournal(text: string, path: string): JournalState & { valid: number } {
  const end = text.lastIndexOf('\n') + 1;
  const done = new Map<string, { error?: string }>();
  let lineNo = 0;
  for (const line of text.slice(0, end).split('\n')) {
    lineNo++;
    if (line === '') continue;
    let record: unknown;
    try {
      record = JSON.parse(line);
    } catch {
      record = undefined;
    }
    const name = (record as { name?: unknown } | undefined)?.name;
    if (typeof name !== 'string') {
      throw new OutpostError(
        'BATCH_JOURNAL_INVALID',
        `${path}:${lineNo} is not a line of an outpost batch output ({ "name", "outputs" | "error" }); give another -o`,
        { details: { path, line: lineNo } },
      );
    }
    const error = (record as { error?: { code?: unknown } }).error;
    done.set(name, error === undefined ? {} : { error: typeof error.code === 'string' ? error.code : 'INTERNAL' });
  }
  return { done, discardedBytes: Buffer.byteLength(text.slice(end)), valid: Buffer.byteLength(text.slice(0, end)) };
}

export class Journal {
  private unsynced = 0;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  /** An fsync that failed in the timer, thrown by the next append. */
  private failure: Error | undefined;

  private constructor(
    private readonly fd: number,
    private readonly path: string,
    readonly state: JournalState,
    private readonly options: Required<JournalOptions>,
  ) {}

  /**
   * Opens `path` for appending. `resume`: an existing file is read as a journal (a torn last line cut off);
   * otherwise an existing non-empty file is refused (ALREADY_EXISTS) unless `overwrite`.
   */
  static open(path: string, mode: { resume: boolean; overwrite: boolean }, options: JournalOptions = {}): Journal {
    let state: JournalState = { done: new Map(), discardedBytes: 0 };
    let fd: number;
    try {
      fd = openSync(path, mode.overwrite && !mode.resume ? 'w+' : 'a+');
    } catch (error) {
      throw fromFsError(error, path, 'write');
    }
    try {
      const text = readFileSync(fd, 'utf8');
      if (text.length > 0 && !mode.resume) {
        throw new OutpostError(
          'ALREADY_EXISTS',
          `${path} already holds results: --resume to continue it, --force to start it over`,
          { details: { path } },
        );
      }
      const parsed = parseJournal(text, path);
      if (parsed.discardedBytes > 0) ftruncateSync(fd, parsed.valid); // 'a+' appends at the (new) end
      state = parsed;
    } catch (error) {
      closeSync(fd);
      throw error instanceof OutpostError ? error : fromFsError(error, path, 'read');
    }
    return new Journal(fd, path, state, { ...JOURNAL_DEFAULTS, ...options });
  }

  /** Appends one record as a line; written at once (one write call), fsynced with the next batch. */
  append(record: unknown): void {
    if (this.closed) throw new OutpostError('INTERNAL', `journal ${this.path} appended after close`);
    if (this.failure !== undefined) throw this.failure;
    try {
      writeSync(this.fd, `${JSON.stringify(record)}\n`);
    } catch (error) {
      throw fromFsError(error, this.path, 'write');
    }
    if (++this.unsynced >= this.options.syncEvery) this.sync();
    else this.timer ??= setTimeout(this.tick, this.options.syncIntervalMs).unref();
  }

  private readonly tick = (): void => {
    try {
      this.sync();
    } catch (error) {
      this.failure = error instanceof Error ? error : new OutpostError('OUTPUT_UNWRITABLE', String(error));
    }
  };

  /** Makes every appended line durable. */
  sync(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.unsynced === 0 || this.closed) return;
    try {
      fsyncSync(this.fd);
    } catch (error) {
      throw fromFsError(error, this.path, 'write');
    }
    this.unsynced = 0;
  }

  close(): void {
    if (this.closed) return;
    this.sync();
    this.closed = true;
    closeSync(this.fd);
  }
}
