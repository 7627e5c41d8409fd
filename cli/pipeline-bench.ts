import { OutpostError } from '../runtime/errors.js';
import { openPipeline, readPipelineVectors, type Pipeline } from '../runtime/pipeline/index.js';
import { benchmarkPipeline, type PipelineBenchReport } from '../runtime/tuning/index.js';
import type { TensorLike } from '../runtime/tensor/index.js';
import { formatNumber, print, printJson, table } from './output.js';
import { pipelineFeeds } from './pipeline-run.js';
import { ProgressReporter } from './progress.js';

/** Warm-up and timed runs when not given: a pipeline request is one or more whole models plus transforms. */
export const PIPELINE_BENCH_DEFAULTS = Object.freeze({
  warmup: 2, // runs: loads each session's kernels and sharp's codecs
  iterations: 20, // runs: p99 is then the slowest run or near it; ask for more for a tail
});

/** The request a bench times: the caller's files, or the artifact's first recorded test vector. */
export interface BenchRequest {
  readonly from: 'input' | 'test-vector';
  /** The --input arguments, or the test vector's case id. */
  readonly what: string;
}

export function printPipelineBench(report: PipelineBenchReport, request?: BenchRequest): void {
  const { host, end_to_end: e2e } = report;
  print(
    `${report.pipeline}@${report.version} pipeline on ${host.cpuModel} (${host.cpus} cpus, ${host.platform}/${host.arch}), ` +
      `${report.iterations} runs, ${report.concurrency} in flight`,
  );
  if (request !== undefined) print(`request: ${request.from === 'input' ? '--input' : 'test vector'} ${request.what}`);
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
 * The request to time, with the precedence `bench <model>` has: `--input` files (as for `outpost run`), else the
 * artifact's first recorded end-to-end test vector (runtime/pipeline/graph/vectors.ts). A pipeline has no synthetic
 * fallback (its input is an image or a tensor only the caller knows): without either, INVALID_ARGUMENT asks for
 * `--input`.
 */
export async function benchRequest(
  pipeline: Pipeline,
  path: string,
  input: readonly string[] | undefined,
): Promise<{ feeds: Record<string, TensorLike>; request: BenchRequest }> {
  if (input !== undefined && input.length > 0) {
    return { feeds: await pipelineFeeds(pipeline, input), request: { from: 'input', what: input.join(' ') } };
  }
  const [first] = await readPipelineVectors(pipeline.dir, pipeline.manifest);
  if (first === undefined) {
    throw new OutpostError(
      'INVALID_ARGUMENT',
      `pipeline ${path} has no recorded test vectors: give the request to time with --input <file> (e.g. an image), ` +
        'as for outpost run, or rebuild it with testVectors / --test-input',
    );
  }
  return { feeds: first.inputs, request: { from: 'test-vector', what: first.id } };
}

/**
 * `outpost bench <pipeline> [--input <file>]`: end-to-end and per-step latency of a pipeline artifact, the steps'
 * times taken from the same runs (runtime/tuning/pipeline-bench.ts), on the request benchRequest picks.
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
    const { feeds, request } = await benchRequest(pipeline, path, opts.input);
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
    if (opts.json === true) printJson({ ...report, request });
    else printPipelineBench(report, request);
  } finally {
    await pipeline.release();
  }
}
