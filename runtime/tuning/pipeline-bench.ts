import { arch, availableParallelism, cpus, platform } from 'node:os';
import type { Pipeline, StepInfo } from '../pipeline/index.js';
import type { TensorLike } from '../tensor/tensor.js';
import { latencyStats, measure, type LatencyStats } from './stats.js';

/** Latency figures of one row of `outpost bench <pipeline> --json`; milliseconds. */
export interface LatencyRow {
  readonly p50_ms: number;
  readonly p90_ms: number;
  readonly p99_ms: number;
  readonly mean_ms: number;
}

export interface PipelineBenchReport {
  readonly pipeline: string;
  readonly version: string;
  readonly host: { arch: string; platform: string; cpus: number; cpuModel: string };
  readonly warmup: number;
  readonly iterations: number;
  readonly concurrency: number;
  /** One request through every step, as `pipeline.run` returns it. */
  readonly end_to_end: LatencyRow & { readonly throughput_per_s: number };
  /** Each step's own time, in plan order; `share` is its mean over the end-to-end mean. */
  readonly steps: readonly (StepInfo & LatencyRow & { readonly share: number })[];
}

export interface PipelineBenchOptions {
  readonly warmup: number;
  readonly iterations: number;
  /** Requests in flight at once: step times then include waiting for the models' sessions. */
  readonly concurrency: number;
  readonly onProgress?: (done: number, total: number) => void;
}

const row = (s: LatencyStats): LatencyRow => ({ p50_ms: s.p50, p90_ms: s.p90, p99_ms: s.p99, mean_ms: s.mean });

/**
 * Times `iterations` runs of the loaded pipeline on `feeds` (after `warmup` untimed ones): end to end, and each
 * step from the timings the pipeline reports for that same run, so the step rows and the end-to-end row come from
 * the same calls. A failing run fails the bench (the input is the caller's; a benchmark of errors measures nothing).
 */
export async function benchmarkPipeline(
  pipeline: Pipeline,
  feeds: Readonly<Record<string, TensorLike>>,
  options: PipelineBenchOptions,
): Promise<PipelineBenchReport> {
  const perStep = new Map<string, number[]>(pipeline.steps.map((s) => [s.id, []]));
  for (let i = 0; i < options.warmup; i++) await pipeline.run(feeds);
  const { samples, wallMs } = await measure(
    async () => {
      const { timings } = await pipeline.run(feeds);
      for (const [step, ms] of Object.entries(timings)) perStep.get(step)?.push(ms);
    },
    { warmup: 0, iterations: options.iterations, concurrency: options.concurrency, onProgress: options.onProgress },
  );
  const total = latencyStats(samples);
  return {
    pipeline: pipeline.name,
    version: pipeline.version,
    host: {
      arch: arch(),
      platform: platform(),
      cpus: availableParallelism(),
      cpuModel: cpus()[0]?.model.trim() ?? 'unknown',
    },
    warmup: options.warmup,
    iterations: options.iterations,
    concurrency: options.concurrency,
    end_to_end: { ...row(total), throughput_per_s: wallMs > 0 ? (options.iterations * 1000) / wallMs : 0 },
    steps: pipeline.steps.map((step) => {
      const stats = latencyStats(perStep.get(step.id) ?? []);
      return { ...step, ...row(stats), share: total.mean > 0 ? stats.mean / total.mean : 0 };
    }),
  };
}
