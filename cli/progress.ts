import { cliFlags } from './context.js';

/**
 * Progress of long work, always on stderr (stdout carries results and `--json`). The library layers report
 * (stage, done, total) through callbacks; this is the one place that draws them:
 *
 * - on a terminal: one line redrawn in place, `stage [#####.....] done/total  12 s`, at most every 100 ms;
 * - otherwise (CI, a log file, `2>` into a pipe): plain timestamped lines, one when a stage starts, one when it
 *   ends, and one every `LINE_INTERVAL_MS` while it runs, so a minute of calibration is not a minute of silence;
 * - with `--quiet`: nothing.
 */
export const REDRAW_MS = 100; // ms between redraws on a terminal
export const LINE_INTERVAL_MS = 10_000; // ms between lines for one stage when stderr is not a terminal
const BAR_WIDTH = 30; // characters

export interface ProgressSink {
  readonly isTTY?: boolean;
  write(text: string): unknown;
}

export interface ProgressOptions {
  readonly stream?: ProgressSink;
  /** Default: the global --quiet. */
  readonly quiet?: boolean;
  /** Renders `done` and `total` (e.g. as bytes); default: the numbers. */
  readonly format?: (n: number) => string;
  readonly now?: () => number;
  /** Also show the rate (done per second over the stage) and the time left at that rate: `12.5/s  ETA 40 s`. */
  readonly rate?: boolean;
}

export class ProgressReporter {
  private readonly stream: ProgressSink;
  private readonly quiet: boolean;
  private readonly tty: boolean;
  private readonly format: (n: number) => string;
  private readonly now: () => number;
  private readonly rate: boolean;
  private readonly started: number;
  private stage: string | undefined;
  private stageStarted = 0;
  private lastDraw = -Infinity;
  private drawn = false;

  constructor(
    private readonly label: string,
    options: ProgressOptions = {},
  ) {
    this.stream = options.stream ?? process.stderr;
    this.quiet = options.quiet ?? cliFlags().quiet;
    this.tty = this.stream.isTTY === true;
    this.format = options.format ?? String;
    this.now = options.now ?? Date.now;
    this.rate = options.rate === true;
    this.started = this.now();
  }

  update(stage: string, done: number, total: number): void {
    if (this.quiet) return;
    const now = this.now();
    const fresh = stage !== this.stage;
    if (fresh) {
      this.stage = stage;
      this.stageStarted = now;
    }
    const finished = total > 0 && done >= total;
    if (this.tty) {
      if (!fresh && !finished && now - this.lastDraw < REDRAW_MS) return;
      this.lastDraw = now;
      const filled = total > 0 ? Math.round((Math.min(done, total) / total) * BAR_WIDTH) : 0;
      const bar = `[${'#'.repeat(filled)}${'.'.repeat(BAR_WIDTH - filled)}]`;
      const speed = this.speed(done, total, now);
      this.stream.write(
        `\r\x1b[2K${this.label}: ${stage} ${bar} ${this.count(done, total)}  ${this.elapsed(now)}${speed}`,
      );
      this.drawn = true;
      return;
    }
    if (!fresh && !finished && now - this.lastDraw < LINE_INTERVAL_MS) return;
    this.lastDraw = now;
    const time = new Date(now).toISOString();
    const took = finished && !fresh ? ` in ${((now - this.stageStarted) / 1000).toFixed(1)} s` : '';
    const speed = finished ? '' : this.speed(done, total, now);
    this.stream.write(`${time} ${this.label}: ${stage} ${this.count(done, total)}${took}${speed}\n`);
  }

  /** A one-off line (a status change): printed as is, after clearing a drawn bar. */
  line(text: string): void {
    if (this.quiet) return;
    this.clear();
    this.stream.write(this.tty ? `${text}\n` : `${new Date(this.now()).toISOString()} ${this.label}: ${text}\n`);
  }

  /** Clears the bar on a terminal; call when the work is over (before printing results). */
  done(): void {
    this.clear();
  }

  private clear(): void {
    if (this.tty && this.drawn) this.stream.write('\r\x1b[2K');
    this.drawn = false;
  }

  private count(done: number, total: number): string {
    return total > 0 ? `${this.format(done)}/${this.format(total)}` : this.format(done);
  }

  /** `  12.5/s  ETA 40 s` when asked for and measurable (something done, time passed), else nothing. */
  private speed(done: number, total: number, now: number): string {
    const seconds = (now - this.stageStarted) / 1000;
    if (!this.rate || done <= 0 || seconds <= 0) return '';
    const perSecond = done / seconds;
    const text = perSecond >= 10 ? perSecond.toFixed(0) : perSecond.toFixed(1);
    const left = total > done ? `  ETA ${formatSeconds((total - done) / perSecond)}` : '';
    return `  ${text}/s${left}`;
  }

  private elapsed(now: number): string {
    return `${Math.round((now - this.started) / 1000)} s`;
  }
}

/** `42 s`, `3 min 20 s`, `2 h 05 min`. */
export function formatSeconds(seconds: number): string {
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, '0')} s`;
  return `${Math.floor(s / 3600)} h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')} min`;
}
