import { execFile } from 'node:child_process';
import { availableParallelism } from 'node:os';
import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import { OutpostError, messageOf } from '../../runtime/errors.js';
import type { BackendName } from '../../runtime/backends/index.js';
import { requireBest, tune, type TuneReport, type TuneRow, writeTuneChoice } from '../../runtime/tuning/index.js';
import { ortLogLevel } from '../context.js';
import { collect, parseInputShape, parseNonNegativeInt, parsePositiveInt } from '../options.js';
import { print, printJson, table } from '../output.js';
import { ProgressReporter } from '../progress.js';

interface TuneCliOptions {
  backends: BackendName[];
  threads?: number[];
  batch: number[];
  inputShape?: Record<string, number[]>;
  warmup: number;
  iterations: number;
  concurrency: number;
  maxP99Ms?: number;
  out?: string;
  trustKey?: string[];
  json?: boolean;
}

const BACKENDS: readonly BackendName[] = Object.freeze(['native', 'wasm']);
/** Time one isolated WASM sweep may take before it is given up on. */
const ISOLATED_TIMEOUT_MS = 30 * 60 * 1000;

function parseIntList(value: string): number[] {
  const items = value.split(',').map((s) => s.trim());
  if (items.some((s) => !/^[1-9]\d*$/.test(s))) throw new InvalidArgumentError(`"${value}" is not a list like 1,2,4`);
  return [...new Set(items.map(Number))];
}

function parseBackends(value: string): BackendName[] {
  const items = value.split(',').map((s) => s.trim());
  const bad = items.filter((s) => !(BACKENDS as readonly string[]).includes(s));
  if (bad.length > 0) throw new InvalidArgumentError(`"${bad.join(',')}" is not among ${BACKENDS.join(', ')}`);
  return [...new Set(items)] as BackendName[];
}

function parseMs(value: string): number {
  const n = Number(value);
  if (!(n > 0)) throw new InvalidArgumentError(`"${value}" is not a positive number of milliseconds`);
  return n;
}

/** 1, 2, 4, … up to the cores this process may use. */
function defaultThreads(): number[] {
  const threads = [1];
  while ((threads[threads.length - 1] ?? 1) * 2 <= availableParallelism())
    threads.push((threads[threads.length - 1] ?? 1) * 2);
  return threads;
}

/**
 * ONNX Runtime Web sizes its thread pool once per process: each WASM thread count runs in a fresh `outpost tune`
 * (this same entry point and loader flags, so it works from source and from the build alike) and reports its rows.
 */
function isolatedWasm(path: string, opts: TuneCliOptions): (threads: number) => Promise<readonly TuneRow[]> {
  const entry = process.argv[1];
  return (threads) =>
    new Promise((resolve, reject) => {
      if (entry === undefined) {
        reject(new OutpostError('INTERNAL', 'cannot re-run outpost: no entry script in argv'));
        return;
      }
      const args = [
        ...process.execArgv,
        entry,
        'tune',
        path,
        ...['--backends', 'wasm', '--threads', String(threads), '--batch', opts.batch.join(',')],
        ...['--warmup', String(opts.warmup), '--iterations', String(opts.iterations)],
        ...['--concurrency', String(opts.concurrency), '--json'],
        ...(opts.trustKey ?? []).flatMap((k) => ['--trust-key', k]),
        ...Object.entries(opts.inputShape ?? {}).flatMap(([name, shape]) => [
          '--input-shape',
          `${name}=${shape.join(',')}`,
        ]),
      ];
      execFile(
        process.execPath,
        args,
        { timeout: ISOLATED_TIMEOUT_MS, maxBuffer: 16 * 1024 * 1024 },
        (error, stdout, stderr) => {
          try {
            // A sweep where nothing ran still prints its rows (and exits 1): the rows say why.
            resolve((JSON.parse(stdout) as TuneReport).results);
          } catch {
            reject(
              new OutpostError(
                'INTERNAL',
                `wasm sweep with ${threads} threads failed: ${stderr.trim() || messageOf(error)}`,
              ),
            );
          }
        },
      );
    });
}

function printTable(report: TuneReport): void {
  const best = report.best;
  const rows = report.results.map((r) => {
    const m = r.measured;
    const chosen =
      best !== undefined &&
      r.variant === best.variant &&
      r.backend === best.backend &&
      r.threads === best.threads &&
      (r.batch ?? 1) === (best.batch?.maxBatchSize ?? 1);
    return [
      chosen ? '*' : '',
      r.variant,
      r.backend,
      r.threads,
      r.batch ?? '-',
      m?.p50_ms ?? '',
      m?.p90_ms ?? '',
      m?.p99_ms ?? '',
      m === undefined ? '' : Math.round(m.throughput_per_s),
      m === undefined ? '' : Math.round(m.calls_per_s),
      m?.load_ms ?? '',
      r.skipped !== undefined ? `skipped: ${r.skipped}` : r.failed !== undefined ? `failed: ${r.failed}` : '',
    ];
  });
  print(
    `${report.model}@${report.version} on ${report.host.cpuModel} (${report.host.cpus} cpus, ${report.host.platform}/${report.host.arch})`,
  );
  print(
    table(
      [
        '',
        'variant',
        'backend',
        'threads',
        'batch',
        'p50 ms',
        'p90 ms',
        'p99 ms',
        'items/s',
        'calls/s',
        'load ms',
        'note',
      ],
      rows,
    ),
  );
  if (best === undefined) return;
  const batching =
    best.batch === null
      ? 'no batching'
      : `batch ≤ ${best.batch.maxBatchSize}, queue delay ≤ ${best.batch.maxQueueDelayMs} ms`;
  print(`best: ${best.variant} on ${best.backend}, ${best.threads} thread(s), ${batching} (${best.criterion})`);
}

export function register(program: Command): void {
  program
    .command('tune')
    .description('sweep variants × backends × threads × batch sizes on this device and pick the serving configuration')
    .argument('<artifact|model>', 'artifact directory or .tar.gz, or a .onnx/.ort file')
    .option('--backends <list>', 'backends to try: native,wasm', parseBackends, ['native', 'wasm'])
    .option('--threads <list>', 'intra-op thread counts to try (default: 1, 2, 4, … up to the cores)', parseIntList)
    .option('--batch <list>', 'batch sizes to try (models with a batch dimension)', parseIntList, [1, 2, 4, 8])
    .option(
      '--input-shape <name=d0,d1,…>',
      "bind an input's other symbolic dimensions for the synthetic inputs (repeatable; the batch axis is swept)",
      parseInputShape,
    )
    .option('--warmup <n>', 'untimed calls per configuration', parseNonNegativeInt, 5)
    .option('--iterations <n>', 'timed calls per configuration', parsePositiveInt, 100)
    .option('--concurrency <n>', 'calls in flight at once', parsePositiveInt, 1)
    .option('--max-p99-ms <ms>', 'pick the highest throughput within this p99 (default: the lowest p50)', parseMs)
    .option(
      '--out <file>',
      "write the chosen configuration as JSON (for the agent and outpost serve); other models' choices in the file are kept",
    )
    .option('--trust-key <pem>', 'public key whose artifact signatures are trusted (repeatable)', collect)
    .option('--json', 'print the whole sweep as JSON')
    .action(async (path: string, opts: TuneCliOptions) => {
      const threads = opts.threads ?? defaultThreads();
      const progress = new ProgressReporter('tune');
      const report = await tune(path, {
        backends: opts.backends,
        threads,
        batchSizes: opts.batch,
        shapes: opts.inputShape,
        warmup: opts.warmup,
        iterations: opts.iterations,
        concurrency: opts.concurrency,
        maxP99Ms: opts.maxP99Ms,
        trustedKeys: opts.trustKey,
        ortLogLevel: ortLogLevel(),
        isolateWasm: isolatedWasm(path, { ...opts, threads }),
        onProgress: (done, total) => progress.update('sweep', done, total),
      });
      progress.done();
      if (opts.json === true) printJson(report);
      else printTable(report);
      const best = requireBest(report);
      if (opts.out !== undefined) await writeTuneChoice(opts.out, best);
    });
}
