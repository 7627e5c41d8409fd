import type { Command } from 'commander';
import { benchmark, type BenchReport } from '../../runtime/tuning/index.js';
import type { BackendName } from '../../runtime/backends/index.js';
import { loadModel } from '../../runtime/model/index.js';
import { isPipelineArtifact } from '../../runtime/pipeline/index.js';
import { readInputs } from '../inputs.js';
import { collect, parseNonNegativeInt, parsePositiveInt } from '../options.js';
import { print, printJson, table } from '../output.js';
import { benchPipelineCommand } from '../pipeline-bench.js';
import { ProgressReporter } from '../progress.js';
import { addModelOptions, loadOptions, type ModelOptions } from './shared.js';

interface BenchOptions extends Omit<ModelOptions, 'backend'> {
  backend: 'native' | 'wasm' | 'all';
  warmup?: number;
  iterations?: number;
  concurrency: number;
  rounds: number;
  input?: string[];
}

const MODEL_BENCH_DEFAULTS = Object.freeze({ warmup: 20, iterations: 500 }); // runs per subject

export function printBenchTable(report: BenchReport): void {
  print(
    `${report.model} on ${report.host.cpuModel} (${report.host.cpus} cpus, ${report.host.platform}/${report.host.arch})`,
  );
  const native = report.results.find((r) => r.subject === 'raw-ort' && r.backend === 'native');
  const rows = report.results.map((r) => {
    const baseline = report.results.find((b) => b.subject === 'raw-ort' && b.backend === r.backend);
    return [
      r.subject,
      r.backend,
      r.variant,
      r.p50_ms,
      r.p90_ms,
      r.p99_ms,
      r.mean_ms,
      Math.round(r.throughput_per_s),
      r.load_ms,
      r.rss_mb,
      baseline === undefined ? '' : `${(r.p50_ms / baseline.p50_ms).toFixed(3)}×`,
      native === undefined ? '' : `${(r.p50_ms / native.p50_ms).toFixed(2)}×`,
    ];
  });
  print(
    table(
      [
        'subject',
        'backend',
        'variant',
        'p50 ms',
        'p90 ms',
        'p99 ms',
        'mean ms',
        'inf/s',
        'load ms',
        'rss MB',
        'p50/raw',
        'p50/raw native',
      ],
      rows,
    ),
  );
}

export function register(program: Command): void {
  addModelOptions(
    program
      .command('bench')
      .description('measure latency and throughput through Outpost against a raw ONNX Runtime session in the same run')
      .argument('<artifact|model>', 'artifact or pipeline artifact (directory or .tar.gz), or a .onnx/.ort file'),
    ['native', 'wasm', 'all'],
  )
    .option('--warmup <n>', 'untimed runs per subject (default 20; a pipeline: 2)', parseNonNegativeInt)
    .option('--iterations <n>', 'timed runs per subject (default 500; a pipeline: 20)', parsePositiveInt)
    .option('--concurrency <n>', 'calls in flight at once', parsePositiveInt, 1)
    .option('--rounds <n>', 'rounds the subjects alternate in', parsePositiveInt, 10)
    .option(
      '-i, --input <file>',
      'inputs instead of test vectors or synthetic data (as for run; repeatable; a pipeline: its test vectors, else required)',
      collect,
    )
    .action(async (path: string, opts: BenchOptions) => {
      // A pipeline artifact: per-step and end-to-end latency of one request (cli/pipeline-bench.ts).
      if (await isPipelineArtifact(path)) return benchPipelineCommand(path, opts);
      const backends: BackendName[] =
        opts.backend === 'all' ? ['native', 'wasm'] : [opts.backend === 'wasm' ? 'wasm' : 'native'];
      const base = loadOptions({ ...opts, backend: undefined });
      let feeds;
      if (opts.input !== undefined) {
        const probe = await loadModel(path, { ...base, warmup: 0 });
        try {
          feeds = await readInputs(opts.input, probe, opts.inputShape ?? {});
        } finally {
          await probe.release();
        }
      }
      const progress = new ProgressReporter('bench');
      const report = await benchmark(path, {
        ...base,
        backends,
        warmup: opts.warmup ?? MODEL_BENCH_DEFAULTS.warmup,
        iterations: opts.iterations ?? MODEL_BENCH_DEFAULTS.iterations,
        concurrency: opts.concurrency,
        rounds: opts.rounds,
        feeds,
        onProgress: (done, total) => progress.update('measure', done, total),
      });
      progress.done();
      if (opts.json === true) printJson(report);
      else printBenchTable(report);
    });
}
