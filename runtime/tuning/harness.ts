import { arch, availableParallelism, cpus, platform } from 'node:os';
import type * as ortCommon from 'onnxruntime-common';
import { OutpostError, messageOf } from '../errors.js';
import { logger } from '../log.js';
import { backends } from '../backends/index.js';
import { loadModel, type LoadOptions } from '../model/load.js';
import type { Feeds, Model } from '../model/model.js';
import type { BackendName } from '../backends/types.js';
import { sampleFeeds } from '../model/warmup.js';
import type { TensorLike } from '../tensor/tensor.js';
import { latencyStats, measure } from './stats.js';

const log = logger('bench');

/** One row of `outpost bench --json` (docs/architecture.md, "CLI contract"). */
export interface BenchResult {
  subject: 'raw-ort' | 'outpost';
  backend: BackendName;
  variant: string;
  p50_ms: number;
  p90_ms: number;
  p99_ms: number;
  mean_ms: number;
  throughput_per_s: number;
  /** Session creation (raw-ort) or `loadModel()` including verification (outpost), before warm-up. */
  load_ms: number;
  /** Growth of the process's resident set while this subject loaded and warmed up. */
  rss_mb: number;
}

export interface BenchReport {
  model: string;
  host: { arch: string; platform: string; cpus: number; cpuModel: string };
  results: BenchResult[];
}

export interface BenchOptions extends Pick<
  LoadOptions,
  'variant' | 'dims' | 'shapes' | 'threads' | 'trustedKeys' | 'requireSignature' | 'ortLogLevel' | 'registry'
> {
  readonly backends: readonly BackendName[];
  readonly warmup: number;
  readonly iterations: number;
  readonly concurrency: number;
  /** Explicit inputs; default: the artifact's first test vector, else synthetic data of the bound shapes. */
  readonly feeds?: Feeds;
  /**
   * Subjects alternate in this many rounds so that drift (thermal, other processes) hits all of them alike; the
   * ratios between subjects are what the targets are stated in.
   */
  readonly rounds?: number;
  readonly onProgress?: (done: number, total: number) => void;
}

interface Subject {
  readonly subject: BenchResult['subject'];
  readonly backend: BackendName;
  readonly run: () => Promise<unknown>;
  readonly loadMs: number;
  readonly rssMb: number;
  readonly release: () => Promise<void>;
  samples: number[];
  wallMs: number;
}

type OrtFlavour = Pick<typeof ortCommon, 'InferenceSession' | 'Tensor'>;

const RAW_MODULES = Object.freeze({ native: 'onnxruntime-node', wasm: 'onnxruntime-web' } as const);

function rssMb(): number {
  return process.memoryUsage.rss() / (1024 * 1024);
}

/** The baseline: what a user writing against ONNX Runtime directly would do per call (new Tensor, run). */
async function rawSubject(backend: BackendName, model: Model, feeds: Feeds, options: BenchOptions): Promise<Subject> {
  const ort = (await import(RAW_MODULES[backend])) as OrtFlavour;
  const before = rssMb();
  const started = performance.now();
  const session = await ort.InferenceSession.create(model.file, {
    executionProviders: [backend === 'native' ? 'cpu' : 'wasm'],
    graphOptimizationLevel: 'all',
    logSeverityLevel: 4,
    ...(backend === 'native' && options.threads !== undefined ? { intraOpNumThreads: options.threads } : {}),
  });
  const loadMs = performance.now() - started;
  const entries = Object.entries(feeds);
  const Tensor = ort.Tensor as unknown as new (
    type: string,
    data: TensorLike['data'],
    dims: readonly number[],
  ) => ortCommon.Tensor;
  const run = async () => {
    const raw: Record<string, ortCommon.Tensor> = {};
    for (const [name, t] of entries) raw[name] = new Tensor(t.type ?? 'float32', t.data, t.dims);
    try {
      return await session.run(raw);
    } catch (error) {
      throw new OutpostError('INFERENCE_FAILED', `raw onnxruntime ${backend} session failed: ${messageOf(error)}`, {
        cause: error,
      });
    }
  };
  await run();
  return {
    subject: 'raw-ort',
    backend,
    run,
    loadMs,
    rssMb: rssMb() - before,
    release: () => session.release(),
    samples: [],
    wallMs: 0,
  };
}

function outpostSubject(model: Model, feeds: Feeds, rssMb: number): Subject {
  return {
    subject: 'outpost',
    backend: model.backend,
    run: () => model.infer(feeds),
    loadMs: model.loadMs,
    rssMb,
    release: () => model.release(),
    samples: [],
    wallMs: 0,
  };
}

/**
 * Benchmarks a model through Outpost and through raw ONNX Runtime sessions on the same file in the same process,
 * per backend, interleaving the subjects round by round.
 */
export async function benchmark(path: string, options: BenchOptions): Promise<BenchReport> {
  const subjects: Subject[] = [];
  let modelName = path;
  let variant = '';
  try {
    for (const backend of options.backends) {
      // Engines start once per process: start them before timing so load_ms compares session creation alike.
      await (options.registry ?? backends()).get(backend);
      await import(RAW_MODULES[backend]);
      const before = rssMb();
      const model = await loadModel(path, { ...options, backend, warmup: 1 });
      const feeds = options.feeds ?? (await sampleFeeds(model, model.bindings));
      subjects.push(outpostSubject(model, feeds, rssMb() - before));
      modelName = `${model.name}@${model.version}`;
      variant = model.variant.id;
      subjects.push(await rawSubject(backend, model, feeds, options));
    }
    const rounds = Math.max(1, Math.min(options.rounds ?? 10, options.iterations));
    const total = subjects.length * options.iterations;
    let done = 0;
    for (const s of subjects) await measure(s.run, { warmup: options.warmup, iterations: 0, concurrency: 1 });
    for (let round = 0; round < rounds; round++) {
      const iterations = Math.floor(options.iterations / rounds) + (round < options.iterations % rounds ? 1 : 0);
      // Alternate the order each round so neither subject always runs right after the other.
      const order = round % 2 === 0 ? subjects : [...subjects].reverse();
      for (const s of order) {
        const m = await measure(s.run, {
          warmup: 0,
          iterations,
          concurrency: options.concurrency,
          onProgress: (n) => options.onProgress?.(done + n, total),
        });
        done += iterations;
        s.samples.push(...m.samples);
        s.wallMs += m.wallMs;
      }
    }
  } finally {
    for (const s of subjects) await s.release().catch((error: unknown) => log.debug({ error }, 'release failed'));
  }
  return {
    model: modelName,
    host: {
      arch: arch(),
      platform: platform(),
      cpus: availableParallelism(),
      cpuModel: cpus()[0]?.model.trim() ?? 'unknown',
    },
    results: subjects.map((s) => {
      const stats = latencyStats(s.samples);
      return {
        subject: s.subject,
        backend: s.backend,
        variant,
        p50_ms: stats.p50,
        p90_ms: stats.p90,
        p99_ms: stats.p99,
        mean_ms: stats.mean,
        throughput_per_s: s.wallMs > 0 ? (s.samples.length / s.wallMs) * 1000 : 0,
        load_ms: s.loadMs,
        rss_mb: s.rssMb,
      };
    }),
  };
}
