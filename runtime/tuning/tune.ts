import { arch, availableParallelism, cpus, platform } from 'node:os';
import { OutpostError, messageOf } from '../errors.js';
import { logger } from '../log.js';
import { BACKEND_PRIORITY, BackendRegistry, NativeBackend, WasmBackend } from '../backends/index.js';
import type { BackendName } from '../backends/types.js';
import { loadModel, type LoadOptions } from '../model/load.js';
import type { Model } from '../model/model.js';
import { bindingsFromShapes } from '../model/validate.js';
import { syntheticFeeds } from '../model/warmup.js';
import { batchProblem } from '../server/scheduling/rows.js';
import { latencyStats, measure } from './stats.js';
import type { TuneChoiceFile } from './choice.js';

const log = logger('bench.tune');

/** What one configuration measured: latencies per call (one call carries `batch` items), items/s, calls/s, load ms. */
export type TuneMeasured = TuneChoiceFile['measured'];

/** One combination of the sweep: measured, or why it was not (`skipped`: by design; `failed`: it broke). */
export interface TuneRow {
  readonly variant: string;
  readonly backend: BackendName;
  readonly threads: number;
  /** Items per call; null for a model without a batch dimension. */
  readonly batch: number | null;
  readonly measured?: TuneMeasured;
  readonly skipped?: string;
  readonly failed?: string;
}

/** The chosen configuration, as the agent and `outpost serve` read it (`--out tune.json`; schema in choice.ts). */
export type TuneChoice = TuneChoiceFile;

export interface TuneReport {
  readonly model: string;
  readonly version: string;
  readonly host: { arch: string; platform: string; cpus: number; cpuModel: string };
  /** The batch symbol swept (the first axis of every input, when the server can batch along it), or null. */
  readonly batchDimension: string | null;
  readonly results: TuneRow[];
  readonly best: TuneChoice | undefined;
}

export interface TuneOptions extends Pick<LoadOptions, 'trustedKeys' | 'requireSignature' | 'ortLogLevel'> {
  readonly backends: readonly BackendName[];
  readonly threads: readonly number[];
  /**
   * Full shapes of inputs (`--input-shape`), binding symbolic dimensions other than the batch axis (a sequence
   * length, an image size) for the synthetic inputs; the batch axis is always the sweep's.
   */
  readonly shapes?: Readonly<Record<string, readonly number[]>>;
  /** Items per call to try; ignored (one row per configuration) for a model without a batch dimension. */
  readonly batchSizes: readonly number[];
  readonly warmup: number;
  readonly iterations: number;
  /** Calls in flight at once while measuring. */
  readonly concurrency: number;
  /** Pick the highest throughput whose p99 is within this; without it (or when none is), the lowest p50; ms. */
  readonly maxP99Ms?: number;
  /**
   * Measures the WASM rows of one thread count in a fresh process. ONNX Runtime Web sizes its thread pool once per
   * process, so without this only the first WASM thread count is measured and the others are skipped (and say so).
   */
  readonly isolateWasm?: (threads: number) => Promise<readonly TuneRow[]>;
  readonly onProgress?: (done: number, total: number) => void;
}

/**
 * The batch symbol when the server would batch this model (runtime/server/scheduling/rows.ts `batchProblem`: every
 * input's first axis the same symbol that names a batch), else null. A first axis such as a time axis `T` is not
 * swept: the batcher would never merge requests along it, and its "batch sizes" would measure another workload.
 */
export function batchDimension(model: Model): string | null {
  const first = model.inputs[0]?.shape[0];
  return batchProblem(model) === undefined && typeof first === 'string' ? first : null;
}

function summarise(samples: Float64Array, wallMs: number, batch: number, loadMs: number): TuneMeasured {
  const s = latencyStats(samples);
  const calls = wallMs > 0 ? (samples.length / wallMs) * 1000 : 0;
  return {
    p50_ms: s.p50,
    p90_ms: s.p90,
    p99_ms: s.p99,
    mean_ms: s.mean,
    throughput_per_s: calls * batch,
    calls_per_s: calls,
    load_ms: loadMs,
  };
}

/**
 * The choice rule: the highest throughput among configurations whose p99 meets the bound; without a bound, or when
 * none meets it, the lowest p50 (the latency-safe default).
 */
export function pickBest(rows: readonly TuneRow[], maxP99Ms?: number): { row: TuneRow; criterion: string } | undefined {
  const ok = rows.filter((r) => r.measured !== undefined);
  const within = maxP99Ms === undefined ? [] : ok.filter((r) => (r.measured?.p99_ms ?? Infinity) <= maxP99Ms);
  if (within.length > 0) {
    const row = within.reduce((a, b) =>
      (b.measured?.throughput_per_s ?? 0) > (a.measured?.throughput_per_s ?? 0) ? b : a,
    );
    return { row, criterion: `highest throughput with p99 ≤ ${maxP99Ms} ms` };
  }
  const [first] = ok;
  if (first === undefined) return undefined;
  const row = ok.reduce((a, b) => ((b.measured?.p50_ms ?? Infinity) < (a.measured?.p50_ms ?? Infinity) ? b : a), first);
  return {
    row,
    criterion: maxP99Ms === undefined ? 'lowest p50' : `lowest p50 (no configuration had p99 ≤ ${maxP99Ms} ms)`,
  };
}

/**
 * How long the batcher may hold the first call for others to join: the p50 of one unbatched call of the same
 * configuration. Waiting longer buys nothing (that call could have run alone meanwhile); round to 0.1 ms.
 */
function queueDelayMs(rows: readonly TuneRow[], best: TuneRow): number {
  const single = rows.find(
    (r) => r.variant === best.variant && r.backend === best.backend && r.threads === best.threads && r.batch === 1,
  );
  const ms = single?.measured?.p50_ms ?? (best.measured?.p50_ms ?? 0) / (best.batch ?? 1);
  return Math.max(0.1, Math.round(ms * 10) / 10);
}

function loadOptions(options: TuneOptions, registry: BackendRegistry): LoadOptions {
  return {
    registry,
    warmup: 0, // measure() warms up each batch size itself
    trustedKeys: options.trustedKeys,
    requireSignature: options.requireSignature,
    ortLogLevel: options.ortLogLevel,
  };
}

interface Plan {
  readonly variants: readonly { id: string; backends: readonly BackendName[] }[];
  readonly batches: readonly (number | null)[];
}

/** Loads one (variant, backend, threads) and measures every batch size on it. */
async function measureConfig(
  path: string,
  registry: BackendRegistry,
  config: { variant: string; backend: BackendName; threads: number },
  batches: readonly (number | null)[],
  symbol: string | null,
  bindings: Readonly<Record<string, number>>,
  options: TuneOptions,
  progress: () => void,
): Promise<TuneRow[]> {
  const rows: TuneRow[] = [];
  let model: Model | undefined;
  try {
    model = await loadModel(path, { ...loadOptions(options, registry), ...config });
  } catch (error) {
    for (const batch of batches) {
      rows.push({ ...config, batch, failed: messageOf(error) });
      progress();
    }
    return rows;
  }
  try {
    for (const batch of batches) {
      try {
        const feeds = syntheticFeeds(
          model,
          symbol === null || batch === null ? bindings : { ...bindings, [symbol]: batch },
        );
        const loaded = model;
        const { warmup, iterations, concurrency } = options;
        const m = await measure(() => loaded.infer(feeds), { warmup, iterations, concurrency });
        rows.push({ ...config, batch, measured: summarise(m.samples, m.wallMs, batch ?? 1, model.loadMs) });
      } catch (error) {
        rows.push({ ...config, batch, failed: messageOf(error) });
      }
      progress();
    }
  } finally {
    await model.release();
  }
  return rows;
}

/**
 * SageMaker Inference Recommender, on the device: measures every variant × backend × thread count × batch size
 * (skipping backends a variant does not list) on synthetic inputs and picks the configuration to serve with.
 */
export async function tune(path: string, options: TuneOptions): Promise<TuneReport> {
  const wasmThreads = options.threads;
  const inProcessWasm = wasmThreads[0] ?? 1;
  // A registry of our own: the WASM backend's thread count is the sweep's, not the process default's.
  const registry = new BackendRegistry()
    .register(new NativeBackend(), BACKEND_PRIORITY.native)
    .register(new WasmBackend({ threads: inProcessWasm }), BACKEND_PRIORITY.wasm);
  const probe = await loadModel(path, loadOptions(options, registry));
  const symbol = batchDimension(probe);
  const bindings = options.shapes === undefined ? {} : bindingsFromShapes(probe.inputs, options.shapes);
  const plan: Plan = {
    variants: [...probe.manifest.variants].sort((a, b) => a.rank - b.rank),
    batches: symbol === null ? [null] : [...new Set(options.batchSizes)],
  };
  const { name, version } = probe.manifest;
  await probe.release();

  const configs = plan.variants.flatMap((v) =>
    options.backends
      .filter((b) => v.backends.includes(b))
      .flatMap((backend) => options.threads.map((threads) => ({ variant: v.id, backend, threads }))),
  );
  // Child processes only when there are WASM rows to measure at more than one thread count.
  const isolate =
    options.isolateWasm !== undefined && wasmThreads.length > 1 && configs.some((c) => c.backend === 'wasm')
      ? options.isolateWasm
      : undefined;
  const total = configs.length * plan.batches.length;
  let done = 0;
  const progress = () => options.onProgress?.(++done, total);
  const rows: TuneRow[] = [];
  for (const threads of isolate === undefined ? [] : wasmThreads) {
    const expected = configs.filter((c) => c.backend === 'wasm' && c.threads === threads).length * plan.batches.length;
    try {
      rows.push(...((await isolate?.(threads)) ?? []));
    } catch (error) {
      log.warn({ threads, error: messageOf(error) }, 'isolated wasm sweep failed');
      for (const c of configs.filter((c) => c.backend === 'wasm' && c.threads === threads))
        for (const batch of plan.batches) rows.push({ ...c, batch, failed: messageOf(error) });
    }
    for (let i = 0; i < expected; i++) progress();
  }
  for (const config of configs) {
    if (config.backend === 'wasm' && isolate !== undefined) continue;
    if (config.backend === 'wasm' && config.threads !== inProcessWasm) {
      const skipped = `ONNX Runtime Web sizes its thread pool once per process (${inProcessWasm} here); tune wasm with --threads ${config.threads} alone`;
      for (const batch of plan.batches) {
        rows.push({ ...config, batch, skipped });
        progress();
      }
      continue;
    }
    rows.push(...(await measureConfig(path, registry, config, plan.batches, symbol, bindings, options, progress)));
  }
  const order = (r: TuneRow): number =>
    configs.findIndex((c) => c.variant === r.variant && c.backend === r.backend && c.threads === r.threads) *
      plan.batches.length +
    plan.batches.indexOf(r.batch);
  rows.sort((a, b) => order(a) - order(b));

  const picked = pickBest(rows, options.maxP99Ms);
  const best: TuneChoice | undefined =
    picked?.row.measured === undefined
      ? undefined
      : {
          model: name,
          version,
          variant: picked.row.variant,
          backend: picked.row.backend,
          threads: picked.row.threads,
          batch:
            picked.row.batch === null || picked.row.batch <= 1
              ? null
              : { maxBatchSize: picked.row.batch, maxQueueDelayMs: queueDelayMs(rows, picked.row) },
          measured: picked.row.measured,
          criterion: picked.criterion,
        };
  return {
    model: name,
    version,
    host: {
      arch: arch(),
      platform: platform(),
      cpus: availableParallelism(),
      cpuModel: cpus()[0]?.model.trim() ?? 'unknown',
    },
    batchDimension: symbol,
    results: rows,
    best,
  };
}

/** The choice, or an error naming why every configuration failed. */
export function requireBest(report: TuneReport): TuneChoice {
  if (report.best !== undefined) return report.best;
  const reasons = [...new Set(report.results.map((r) => r.failed ?? r.skipped).filter((r) => r !== undefined))];
  throw new OutpostError(
    'INFERENCE_FAILED',
    `no configuration of ${report.model} could be measured: ${reasons.join('; ')}`,
    {
      details: { reasons },
    },
  );
}
