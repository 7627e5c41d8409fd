import os from 'node:os';
import type { Command } from 'commander';
import {
  Journal,
  ModelRunner,
  PipelineRunner,
  listInputs,
  transform,
  type BatchRunner,
  type BatchSummary,
} from '../../runtime/batch/index.js';
import { OutpostError, fromFsError } from '../../runtime/errors.js';
import { isPipelineArtifact, openPipeline } from '../../runtime/pipeline/index.js';
import { readTuneChoices, type TuneChoiceFile } from '../../runtime/tuning/index.js';
import { parseNonNegativeInt, parsePositiveInt } from '../options.js';
import { formatNumber, print, printJson, table } from '../output.js';
import { ProgressReporter } from '../progress.js';
import { loadServed } from '../serving.js';
import { addModelOptions, loadOptions, type ModelOptions } from './shared.js';

interface BatchOptions extends ModelOptions {
  output: string;
  resume?: boolean;
  force?: boolean;
  maxBatchSize?: number;
  concurrency?: number;
  tuning?: string;
  agentConfig?: string;
  nice: number;
}

/** Exit status when the output is complete but some inputs failed (their lines carry the errors). */
export const EXIT_SOME_FAILED = 2;
/** Niceness a batch runs at unless told otherwise: an agent serving on the device keeps its share of the CPU. */
export const DEFAULT_NICE = 10;
const MAX_NICE = 19; // the lowest priority Linux and macOS schedule
/** After SIGINT/SIGTERM, how long the inputs in flight may take to finish before the process exits regardless. */
const FORCED_EXIT_MS = 5_000;

/** Lowers this process's priority to `nice` (never raises it: that needs privileges and is not ours to take). */
function lowerPriority(nice: number): void {
  if (nice > MAX_NICE) throw new OutpostError('INVALID_ARGUMENT', `--nice ${nice}: at most ${MAX_NICE}`);
  try {
    if (os.getPriority() < nice) os.setPriority(nice);
  } catch (error) {
    throw fromFsError(error, `the priority of process ${process.pid}`, 'set');
  }
}

/**
 * The tuning file: --tuning, else the one the device's agent serves with (`tuning` in its config), so a batch on
 * the device runs with the threads, variant and backend `outpost tune` measured there.
 */
async function tuningFile(opts: BatchOptions): Promise<string | undefined> {
  if (opts.tuning !== undefined || opts.agentConfig === undefined) return opts.tuning;
  // Loaded only when asked for: the agent's modules are not batch's to pay for otherwise.
  const { parseAgentConfig, readAgentConfig } = await import('../../device-agent/index.js');
  return parseAgentConfig(await readAgentConfig(opts.agentConfig), opts.agentConfig).tuning;
}

function printSummary(summary: BatchSummary, output: string): void {
  const { subject: s } = summary;
  print(`${s.name}@${s.version}  variant ${s.variant ?? '-'}  backend ${s.backend ?? '-'}`);
  print(
    `${summary.inputs} inputs: ${summary.succeeded} answered, ${summary.failed} failed` +
      (summary.resumed > 0 ? `, ${summary.resumed} already in ${output}` : '') +
      (summary.remaining > 0 ? `, ${summary.remaining} not run` : ''),
  );
  const batches =
    summary.model_runs > 0
      ? `, ${summary.model_runs} model runs of ${formatNumber(summary.mean_batch)} on average`
      : '';
  print(
    `ran ${summary.ran} in ${formatNumber(summary.seconds)} s (${formatNumber(summary.inputs_per_s)} inputs/s${batches})`,
  );
  const codes = Object.entries(summary.errors).sort(([a], [b]) => a.localeCompare(b));
  if (codes.length > 0) print(table(['error', 'inputs'], codes));
  print(`output: ${output}`);
}

/**
 * The runner for `path`: a pipeline artifact runs through PipelineRunner (its steps batch inside each input), a
 * model through ModelRunner on the dynamic batcher with the tuning file's batch size. Release frees what it loaded.
 */
async function openRunner(
  path: string,
  opts: BatchOptions,
  tuning: ReadonlyMap<string, TuneChoiceFile> | undefined,
): Promise<{ runner: BatchRunner; release: () => Promise<void> }> {
  if (await isPipelineArtifact(path)) {
    const trustedKeys = opts.trustKey ?? [];
    const pipeline = await openPipeline(path, {
      trustedKeys,
      requireSignature: trustedKeys.length > 0,
      ...(opts.backend === undefined ? {} : { backend: opts.backend }),
      ...(opts.threads === undefined ? {} : { threads: opts.threads }),
    });
    const runner = new PipelineRunner(pipeline, {
      ...(opts.concurrency === undefined ? {} : { concurrency: opts.concurrency }),
      shapes: opts.inputShape ?? {},
    });
    return { runner, release: () => pipeline.release() };
  }
  const model = await loadServed(path, loadOptions(opts), tuning);
  try {
    const tuned = tuning?.get(model.name)?.batch;
    const runner = await ModelRunner.open(model, {
      maxBatchSize: opts.maxBatchSize ?? tuned?.maxBatchSize,
      concurrency: opts.concurrency,
      shapes: opts.inputShape ?? {},
    });
    return { runner, release: () => model.release() };
  } catch (error) {
    await model.release();
    throw error;
  }
}

/**
 * `outpost batch <artifact> <inputs…> -o <out.jsonl>`: every input through the model with dynamic batching, one
 * JSON line per input (runtime/batch/README.md). A local, separate process: it loads its own copy of the model at
 * a lower priority, so an agent serving on the same device keeps serving (docs/batch.md).
 */
async function batch(path: string, inputs: string[], opts: BatchOptions): Promise<void> {
  if (opts.resume === true && opts.force === true) {
    throw new OutpostError(
      'INVALID_ARGUMENT',
      '--resume and --force are alternatives: continue the output, or redo it',
    );
  }
  lowerPriority(opts.nice);
  const file = await tuningFile(opts);
  const tuning = file === undefined ? undefined : await readTuneChoices(file);
  const items = await listInputs(inputs);
  const journal = Journal.open(opts.output, { resume: opts.resume === true, overwrite: opts.force === true });
  const controller = new AbortController();
  let signal: NodeJS.Signals | undefined;
  const stop = (received: NodeJS.Signals) => {
    signal = received;
    controller.abort();
    // An input stuck in a read (a FIFO, a hung network mount) must not hold the exit: the lines written are whole,
    // and the inputs dropped are simply not in the file, so --resume runs them.
    setTimeout(() => {
      try {
        journal.close();
      } finally {
        process.stderr.write(
          `outpost: batch interrupted by ${received}; inputs still running after ${FORCED_EXIT_MS / 1000} s were dropped, --resume runs them [INTERRUPTED]\n`,
        );
        // process.exit would wait for the stuck thread-pool read; the signal's default action does not.
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
        process.kill(process.pid, received);
      }
    }, FORCED_EXIT_MS).unref();
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    const opened = await openRunner(path, opts, tuning);
    try {
      const { runner } = opened;
      const progress = new ProgressReporter('batch', { rate: true });
      const stage = `${runner.subject.name}@${runner.subject.version}`;
      let summary: BatchSummary;
      try {
        summary = await transform({
          runner,
          items,
          journal,
          signal: controller.signal,
          onProgress: (done, total) => progress.update(stage, done, total),
        });
      } finally {
        progress.done();
        await runner.close();
      }
      if (signal !== undefined) {
        throw new OutpostError(
          'INTERRUPTED',
          `batch interrupted by ${signal}: ${summary.ran} inputs written to ${opts.output}, ${summary.remaining} left (--resume continues)`,
          { details: { signal, ...summary } },
        );
      }
      if (opts.json === true) printJson({ ...summary, output: opts.output });
      else printSummary(summary, opts.output);
      if (summary.failed > 0) process.exitCode = EXIT_SOME_FAILED;
    } finally {
      await opened.release();
    }
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
    journal.close();
  }
}

export function register(program: Command): void {
  addModelOptions(
    program
      .command('batch')
      .description('run every input of a set through a model, one JSON line each; resumable (exit 2: some failed)')
      .argument('<artifact|model>', 'artifact or pipeline artifact (directory or .tar.gz), or a .onnx/.ort file')
      .argument('<inputs...>', 'directories, globs (quoted), .jsonl files, or files: images, .npy, .json requests')
      .requiredOption('-o, --output <file.jsonl>', 'output: one line per input; also the journal --resume reads')
      .option('--resume', 'continue an interrupted output: skip inputs it names, drop a torn last line')
      .option('--force', 'start an existing output over')
      .option('--max-batch-size <rows>', 'rows per batch (default: the tuning file, else 8)', parsePositiveInt)
      .option('--concurrency <n>', 'batches (a pipeline: inputs) run at once (default 2)', parsePositiveInt)
      .option('--tuning <file>', '`outpost tune --out` file: threads, variant, backend and batch size of the model')
      .option('--agent-config <file>', "the device agent's config: use its tuning file (unless --tuning)")
      .option(
        '--nice <n>',
        'run at this niceness (0–19) so a serving agent keeps the CPU it needs',
        parseNonNegativeInt,
        DEFAULT_NICE,
      ),
  ).action(batch);
}
