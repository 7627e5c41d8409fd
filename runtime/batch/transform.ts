import { isOutpostError, messageOf } from '../errors.js';
import type { Journal } from './journal.js';
import type { BatchRunner } from './runner.js';
import type { BatchItem } from './sources.js';

/** One line of the output: an input's name and its outputs, or its typed error. */
export type BatchLine =
  | ({ readonly name: string } & Awaited<ReturnType<BatchRunner['run']>>)
  | { readonly name: string; readonly error: { readonly code: string; readonly message: string } };

export interface BatchSummary {
  readonly subject: BatchRunner['subject'];
  /** Inputs named by the arguments. */
  readonly inputs: number;
  /** Of those, already in the output before this run (`--resume`): not run again. */
  readonly resumed: number;
  /** Run by this invocation. */
  readonly ran: number;
  /** Over every input in the output file (resumed ones included): with outputs, with an error. */
  readonly succeeded: number;
  readonly failed: number;
  /** Failed inputs by error code. */
  readonly errors: Readonly<Record<string, number>>;
  /** Inputs left undone: the run was interrupted. */
  readonly remaining: number;
  readonly seconds: number;
  /** Inputs per second over this invocation's run. */
  readonly inputs_per_s: number;
  /** Model runs this invocation made and the inputs they carried: their ratio is the mean batch. */
  readonly model_runs: number;
  readonly mean_batch: number;
}

export interface TransformOptions {
  readonly runner: BatchRunner;
  readonly items: readonly BatchItem[];
  readonly journal: Journal;
  /** Called after each line is written: done and total of this invocation's inputs. */
  readonly onProgress?: (done: number, total: number, failed: number) => void;
  /** Stops starting inputs; the ones in flight finish and are written, then the transform returns. */
  readonly signal?: AbortSignal;
  readonly now?: () => number;
}

/**
 * Runs every item not yet in the journal through the runner, up to `runner.window` at once, and appends one line
 * per item in input order (a finished item waits for the ones before it, at most a window's worth), so after a
 * SIGKILL the file is a prefix of the remaining work plus what a previous run wrote. A failing item is a line with
 * its error; nothing stops the run but the signal or a journal that cannot be written.
 */
export async function transform(options: TransformOptions): Promise<BatchSummary> {
  const { runner, journal, signal } = options;
  const now = options.now ?? (() => performance.now());
  const done = journal.state.done;
  const todo = options.items.filter((item) => !done.has(item.name));
  const errors: Record<string, number> = {};
  let failed = 0;
  for (const item of options.items) {
    const code = done.get(item.name)?.error;
    if (code !== undefined) {
      failed++;
      errors[code] = (errors[code] ?? 0) + 1;
    }
  }
  const resumedFailed = failed;
  const started = now();
  let written = 0;
  await new Promise<void>((resolve, reject) => {
    const finished = new Map<number, BatchLine>();
    let next = 0;
    let inFlight = 0;
    let stopped = false;
    const settle = () => {
      if (inFlight === 0 && (next === todo.length || stopped)) resolve();
    };
    const write = () => {
      for (let line = finished.get(written); line !== undefined; line = finished.get(written)) {
        finished.delete(written);
        try {
          journal.append(line);
        } catch (error) {
          stopped = true;
          reject(error instanceof Error ? error : new Error(messageOf(error)));
          return;
        }
        if ('error' in line) {
          failed++;
          errors[line.error.code] = (errors[line.error.code] ?? 0) + 1;
        }
        written++;
        options.onProgress?.(written, todo.length, failed - resumedFailed);
      }
    };
    const start = () => {
      if (signal?.aborted === true) stopped = true;
      // The window counts everything started and not yet written, so a slow item bounds what waits behind it.
      while (!stopped && next < todo.length && next - written < runner.window) {
        const index = next++;
        const item = todo[index] as BatchItem;
        inFlight++;
        runner
          .run(item)
          .then(
            (result): BatchLine => ({ name: item.name, ...result }),
            (error: unknown): BatchLine => ({
              name: item.name,
              error: { code: isOutpostError(error) ? error.code : 'INTERNAL', message: messageOf(error) },
            }),
          )
          .then((line) => {
            inFlight--;
            finished.set(index, line);
            write();
            start();
            settle();
          }, reject);
      }
      settle();
    };
    signal?.addEventListener(
      'abort',
      () => {
        stopped = true;
        settle();
      },
      { once: true },
    );
    start();
  });
  journal.sync();
  const seconds = (now() - started) / 1000;
  const recorded = options.items.filter((item) => done.has(item.name)).length + written;
  return {
    subject: runner.subject,
    inputs: options.items.length,
    resumed: options.items.length - todo.length,
    ran: written,
    succeeded: recorded - failed,
    failed,
    errors,
    remaining: options.items.length - recorded,
    seconds,
    inputs_per_s: seconds > 0 ? written / seconds : 0,
    model_runs: runner.runs.runs,
    mean_batch: runner.runs.runs > 0 ? runner.runs.inputs / runner.runs.runs : 0,
  };
}
