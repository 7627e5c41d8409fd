import { OutpostError } from '../runtime/errors.js';
import { openPipeline } from '../runtime/pipeline/index.js';
import { benchmarkPipeline, type PipelineBenchReport } from '../runtime/tuning/index.js';
import { formatNumber, print, printJson, table } from './output.js';
import { pipelineFeeds } from './pipeline-run.js';
import { ProgressReporter } from './progress.js';

/** Warm-up and timed runs when not given: a pipeline request is one or more whole models plus transforms. */
export const PIPELINE_BENCH_DEFAULTS = Object.freeze({
  warmup: 2, // runs: loads each session's kernels and sharp's codecs
  iterations: 20, // runs: p99 is then the slowest run or near it; ask for more for a tail
});

export function printPipelineBench(report: PipelineBenchReport): void {
  const { host, end_to_end: e2e } = report;
  print(
    `${report.pipeline}@${report.version} pipeline on ${host.cpuModel} (${host.cpus} cpus, ${host.platform}/${host.arch}), ` +
      `${report.iterations} runs, ${report.concurrency} in flight`,
  );
  const ms = (v: number) => formatNumber(v);
  const rows = report.steps.map((s) => [
    s.id,
    s.kind === 'model' ? `model ${s.what}${s.batch === undefined ? '' : ` (batch ${s.batch})`}` : s.what,
    ms(s.p50_ms),
    ms(s.p90_ms),
    ms(s.p99_ms),
    ms(s.mean_ms),
    `${(s.share * 100).toFixed(1)} %`,
  ]);
  rows.push(['end to end', '', ms(e2e.p50_ms), ms(e2e.p90_ms), ms(e2e.p99_ms), ms(e2e.mean_ms), '100 %']);
  print(table(['step', 'what', 'p50 ms', 'p90 ms', 'p99 ms', 'mean ms', 'share'], rows));
  print(`throughput ${formatNumber(e2e.throughput_per_s)} requests/s`);
}

/**
 * `outpost bench <pipeline> --input <file>`: end-to-end and per-step latency of a pipeline artifact, the steps'
 * times taken from the same runs (runtime/tuning/pipeline-bench.ts). A pipeline carries no test vectors, so the
 * request is the caller's: `--input` as for `outpost run`.
 */
export async function benchPipelineCommand(
  path: string,
  opts: {
    input?: string[];
    warmup?: number;
    iterations?: number;
    concurrency: number;
    json?: boolean;
    trustKey?: string[];
    backend: 'native' | 'wasm' | 'all';
    threads?: number;
  },
): Promise<void> {
  if (opts.input === undefined || opts.input.length === 0) {
    throw new OutpostError(
      'INVALID_ARGUMENT',
      `${path} is a pipeline: give the request to time with --input <file> (e.g. an image), as for outpost run`,
    );
  }
  if (opts.backend === 'all') {
    throw new OutpostError('INVALID_ARGUMENT', '--backend all compares models; bench a pipeline on native or wasm');
  }
  const trustedKeys = opts.trustKey ?? [];
  const pipeline = await openPipeline(path, {
    trustedKeys,
    requireSignature: trustedKeys.length > 0,
    backend: opts.backend,
    ...(opts.threads === undefined ? {} : { threads: opts.threads }),
  });
  try {
    const feeds = await pipelineFeeds(pipeline, opts.input);
    const progress = new ProgressReporter('bench');
    let report: PipelineBenchReport;
    try {
      report = await benchmarkPipeline(pipeline, feeds, {
        warmup: opts.warmup ?? PIPELINE_BENCH_DEFAULTS.warmup,
        iterations: opts.iterations ?? PIPELINE_BENCH_DEFAULTS.iterations,
        concurrency: opts.concurrency,
        onProgress: (done, total) => progress.update('measure', done, total),
      });
    } finally {
      progress.done();
    }
    if (opts.json === true) printJson(report);
    else printPipelineBench(report);
  } finally {
    await pipeline.release();
  }
}
