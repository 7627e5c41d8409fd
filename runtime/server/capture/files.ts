import { mkdir, open, readFile, readdir, rename, rm, stat, writeFile, type FileHandle } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { OutpostError, fromFsError } from '../../errors.js';
import { logger } from '../../log.js';

const log = logger('server.capture');

/**
 * The capture directory's files, grouped into segments: `capture-<seq>.jsonl` and its side files
 * `capture-<seq>-<record>-<in|out><index>.npy[.enc]`. Numbers are fixed-width, so names sort in write order and a
 * name's length never depends on the segment (a record's size is known before its segment is chosen).
 */
const SEQ_DIGITS = 8;
const RECORD_DIGITS = 6;
const NAME = /^capture-(\d{8})(?:-\d{6}-(?:in|out)\d+\.npy(?:\.enc)?|\.jsonl)$/;

/**
 * The next sequence number, kept across restarts: files are named by it, and the receiver of uploads stores them by
 * name, so a number must never come back (even after every file was uploaded and deleted).
 */
const NEXT_SEQ_FILE = 'next-seq';

const pad = (n: number, digits: number): string => String(n).padStart(digits, '0');

export const segmentFile = (seq: number): string => `capture-${pad(seq, SEQ_DIGITS)}.jsonl`;

export const sideFile = (seq: number, record: number, side: 'in' | 'out', index: number, sealed: boolean): string =>
  `capture-${pad(seq, SEQ_DIGITS)}-${pad(record, RECORD_DIGITS)}-${side}${index}.npy${sealed ? '.enc' : ''}`;

/** The segment a capture file belongs to, or undefined for a name that is not a capture file. */
export function segmentOf(name: string): number | undefined {
  const match = NAME.exec(basename(name));
  return match?.[1] === undefined ? undefined : Number(match[1]);
}

/** One record ready to append: its side files and its line. */
export interface EncodedRecord {
  readonly sides: readonly { readonly name: string; readonly bytes: Uint8Array }[];
  readonly line: string;
}

/** A closed capture file, ready to upload. */
export interface SealedFile {
  readonly path: string;
  /** File name inside the capture directory (what the receiver stores it as). */
  readonly name: string;
  readonly bytes: number;
}

export interface DirectoryLimits {
  readonly maxFileBytes: number; // bytes per segment, side files included
  readonly maxTotalBytes: number; // bytes in the directory
  readonly maxFileAgeMs: number; // ms a segment stays open
}

interface Segment {
  readonly seq: number;
  /** File name → bytes on disk. */
  readonly files: Map<string, number>;
  /** Records in the line file; undefined for segments found at start-up until counted (only when deleted). */
  records: number | undefined;
  bytes: number;
  readonly openedAt: number;
  handle: FileHandle | undefined;
}

const sizeOf = (record: EncodedRecord): number =>
  Buffer.byteLength(record.line) + record.sides.reduce((sum, s) => sum + s.bytes.length, 0);

/** Records in a line file: its complete lines (a torn last line is no record). Unreadable: 0. */
async function countRecords(path: string): Promise<number> {
  const bytes = await readFile(path).catch(() => Buffer.alloc(0));
  let n = 0;
  for (let i = bytes.indexOf(0x0a); i !== -1; i = bytes.indexOf(0x0a, i + 1)) n++;
  return n;
}

/**
 * Rotating, size-capped segments in one directory. Not re-entrant: the writer serialises every call. A segment is
 * sealed (fsynced and closed) when the next record would pass `maxFileBytes` or it is older than `maxFileAgeMs`;
 * while the directory holds more than `maxTotalBytes` the oldest sealed segment is deleted and counted.
 */
export class CaptureDirectory {
  private segments: Segment[] = [];
  private current: Segment | undefined;
  private nextSeq = 1;
  private total = 0;
  private opening: Promise<void> | undefined;
  /**
   * `records`/`files`: deleted by the size cap before upload. `lost`: records whose file was deleted from under the
   * writer (an operator emptied the directory while a file was open).
   */
  readonly dropped = { records: 0, files: 0, lost: 0 };

  constructor(
    readonly dir: string,
    private readonly limits: DirectoryLimits,
    private readonly now: () => number,
  ) {}

  get totalBytes(): number {
    return this.total;
  }

  /** Creates the directory and takes over what a previous run left, as sealed segments. A failure is retried next call. */
  open(): Promise<void> {
    this.opening ??= this.scan().catch((error: unknown) => {
      this.opening = undefined;
      throw error;
    });
    return this.opening;
  }

  private async scan(): Promise<void> {
    let names: string[];
    try {
      await mkdir(this.dir, { recursive: true, mode: 0o700 });
      names = await readdir(this.dir);
    } catch (error) {
      throw fromFsError(error, this.dir, 'read');
    }
    const bySeq = new Map<number, Segment>();
    for (const name of names.sort()) {
      const seq = segmentOf(name);
      if (seq === undefined) continue;
      const bytes = await stat(join(this.dir, name)).then(
        (s) => s.size,
        () => undefined, // gone meanwhile
      );
      if (bytes === undefined) continue;
      let segment = bySeq.get(seq);
      if (segment === undefined) {
        segment = { seq, files: new Map(), records: undefined, bytes: 0, openedAt: 0, handle: undefined };
        bySeq.set(seq, segment);
      }
      segment.files.set(name, bytes);
      segment.bytes += bytes;
    }
    this.segments = [...bySeq.values()].sort((a, b) => a.seq - b.seq);
    this.total = this.segments.reduce((sum, s) => sum + s.bytes, 0);
    const saved = Number((await readFile(join(this.dir, NEXT_SEQ_FILE), 'utf8').catch(() => '0')).trim());
    this.nextSeq = Math.max(
      (this.segments[this.segments.length - 1]?.seq ?? 0) + 1,
      Number.isSafeInteger(saved) ? saved : 0,
    );
  }

  /** Temp file + rename: after a crash the file holds the old number or the new one. */
  private async saveNextSeq(next: number): Promise<void> {
    const path = join(this.dir, NEXT_SEQ_FILE);
    await writeFile(`${path}.tmp`, `${next}\n`);
    await rename(`${path}.tmp`, path);
  }

  /**
   * Appends the record `encode` makes for its place (segment, index in it); false when one record alone would pass
   * `maxFileBytes` (nothing is written).
   */
  async append(encode: (seq: number, record: number) => EncodedRecord): Promise<boolean> {
    await this.open();
    let segment = this.current;
    const place = { seq: segment?.seq ?? this.nextSeq, record: segment?.records ?? 0 };
    let record = encode(place.seq, place.record);
    const size = sizeOf(record);
    if (size > this.limits.maxFileBytes) return false;
    if (segment !== undefined && segment.bytes + size > this.limits.maxFileBytes) {
      await this.seal();
      segment = undefined;
    }
    if (segment === undefined) {
      segment = await this.openSegment();
      // Names are fixed-width, so the size is the same in any place; only the names change.
      if (segment.seq !== place.seq || place.record !== 0) record = encode(segment.seq, 0);
    }
    // Side files first: a line never names a file that is not there yet. Each is counted once on disk, so a
    // failure half-way leaves the accounting true to the directory.
    for (const side of record.sides) {
      const path = join(this.dir, side.name);
      await writeFile(path, side.bytes, { mode: 0o600 }).catch((error: unknown) => {
        throw fromFsError(error, path, 'write');
      });
      this.account(segment, side.name, side.bytes.length);
    }
    const name = segmentFile(segment.seq);
    try {
      await segment.handle?.write(record.line);
    } catch (error) {
      // A short write (disk full) may have left part of a line: seal, so that torn line stays the file's last.
      await this.seal().catch(() => undefined);
      throw fromFsError(error, join(this.dir, name), 'write');
    }
    this.account(segment, name, Buffer.byteLength(record.line));
    segment.records = (segment.records ?? 0) + 1;
    if (segment.bytes >= this.limits.maxFileBytes || this.now() - segment.openedAt >= this.limits.maxFileAgeMs)
      await this.seal();
    await this.enforceCap();
    return true;
  }

  private account(segment: Segment, name: string, bytes: number): void {
    segment.files.set(name, (segment.files.get(name) ?? 0) + bytes);
    segment.bytes += bytes;
    this.total += bytes;
  }

  private async openSegment(): Promise<Segment> {
    const seq = this.nextSeq;
    const name = segmentFile(seq);
    const path = join(this.dir, name);
    let handle: FileHandle;
    try {
      // Again each time: an operator may have emptied (removed) the directory; capture resumes when it can.
      await mkdir(this.dir, { recursive: true, mode: 0o700 });
      await this.saveNextSeq(seq + 1);
      handle = await open(path, 'a', 0o600);
    } catch (error) {
      throw fromFsError(error, path, 'write');
    }
    this.nextSeq = seq + 1;
    const segment: Segment = { seq, files: new Map([[name, 0]]), records: 0, bytes: 0, openedAt: this.now(), handle };
    this.segments.push(segment);
    this.current = segment;
    return segment;
  }

  /** Closes the open segment after an fsync: what the uploader is handed is complete on disk. */
  async seal(): Promise<void> {
    const segment = this.current;
    const handle = segment?.handle;
    this.current = undefined;
    if (segment === undefined || handle === undefined) return;
    segment.handle = undefined;
    let unlinked = false;
    try {
      await handle.sync();
      // Deleted from under us (the directory was emptied): its records never reach anyone. Count, forget.
      unlinked = (await handle.stat()).nlink === 0;
    } finally {
      await handle.close();
    }
    if (unlinked) {
      this.forget(segment);
      this.dropped.lost += segment.records ?? 0;
      log.warn({ seq: segment.seq, records: segment.records }, 'capture file deleted while it was being written');
    }
  }

  private forget(segment: Segment): void {
    this.segments = this.segments.filter((s) => s !== segment);
    this.total -= segment.bytes;
  }

  /** Seals the open segment if it holds records and is older than `maxFileAgeMs`. */
  async sealIfOld(): Promise<void> {
    const current = this.current;
    if (
      current !== undefined &&
      (current.records ?? 0) > 0 &&
      this.now() - current.openedAt >= this.limits.maxFileAgeMs
    )
      await this.seal();
  }

  /** The open segment is never deleted: it holds at most maxFileBytes ≤ maxTotalBytes. */
  private async enforceCap(): Promise<void> {
    while (this.total > this.limits.maxTotalBytes) {
      const oldest = this.segments.find((s) => s !== this.current);
      if (oldest === undefined) return;
      this.forget(oldest);
      const records = oldest.records ?? (await countRecords(join(this.dir, segmentFile(oldest.seq))));
      this.dropped.records += records;
      this.dropped.files += oldest.files.size;
      for (const name of oldest.files.keys()) await rm(join(this.dir, name), { force: true });
      // At most once per sealed segment, never per request.
      log.warn(
        { seq: oldest.seq, records, droppedRecords: this.dropped.records },
        'capture directory full: oldest capture file deleted before upload',
      );
    }
  }

  /** Closed files, oldest segment first, each segment's side files before the line file that names them. */
  sealedFiles(): SealedFile[] {
    return this.segments
      .filter((s) => s !== this.current)
      .flatMap((s) => {
        const line = segmentFile(s.seq);
        const names = [...s.files.keys()].sort((a, b) => Number(a === line) - Number(b === line) || a.localeCompare(b));
        return names.map((name) => ({ path: join(this.dir, name), name, bytes: s.files.get(name) ?? 0 }));
      });
  }

  /** Deletes one uploaded file; a file already gone (deleted by the cap meanwhile) is fine. */
  async remove(file: string): Promise<void> {
    const name = basename(file);
    const segment = this.segments.find((s) => s.seq === segmentOf(name));
    const bytes = segment?.files.get(name);
    if (segment === undefined || bytes === undefined) return;
    if (segment === this.current)
      throw new OutpostError('INVALID_ARGUMENT', `${name} is still being written; only sealed files are uploaded`);
    segment.files.delete(name);
    segment.bytes -= bytes;
    this.total -= bytes;
    if (segment.files.size === 0) this.segments = this.segments.filter((s) => s !== segment);
    await rm(join(this.dir, name), { force: true });
  }
}
