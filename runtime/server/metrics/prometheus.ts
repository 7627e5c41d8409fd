import type * as Prom from 'prom-client';
import { Counter, Gauge, Histogram, Registry } from './prom.js';
import { isOutpostError, type ErrorCode } from '../../errors.js';
import type { BatchEvent, BatchObserver } from '../scheduling/batching.js';
import { CALLER_FAULTS } from '../http/status.js';
import type { ServiceRepository } from '../serving/model-repository.js';
import type { InferenceEvent, ServiceObserver } from '../serving/service.js';
import { PipelineMetrics } from './pipelines.js';
import { DEFAULT_WINDOW, SlidingWindow, type Outcome, type WindowOptions, type WindowStats } from './window.js';

export type { WindowStats } from './window.js';

/** Latency histogram bounds: half a millisecond (a small model on a fast core) to two seconds (a big one on a Pi). */
export const LATENCY_BUCKETS = Object.freeze([0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2]); // s
/** Batch sizes as powers of two, the sizes batching is usually tuned to. */
export const BATCH_SIZE_BUCKETS = Object.freeze([1, 2, 4, 8, 16, 32, 64, 128]); // rows

const LABELS = ['model', 'version'] as const;
type Label = (typeof LABELS)[number];
type Labels = Readonly<Record<Label, string>>;

export interface MetricsOptions {
  /** The sliding window behind windowStats(). */
  readonly window?: Partial<WindowOptions>;
  /** Monotonic clock in ms for the window; tests pass their own. */
  readonly now?: () => number;
  readonly latencyBuckets?: readonly number[]; // s
  readonly batchSizeBuckets?: readonly number[]; // rows
}

/** What is kept per model version: its label set (built once, reused on every call) and its window. */
interface Series {
  readonly labels: Labels;
  readonly window: SlidingWindow;
  /** The labelled children, bound once: prom-client hashes the label set on every unbound call. */
  readonly requests: Prom.Counter.Internal;
  readonly latency: Prom.Histogram.Internal<Label>;
  readonly batchSize: Prom.Histogram.Internal<Label>;
}

/** Drift scores as the gauge reads them at scrape time (runtime/monitor's DriftMonitor satisfies this). */
export interface DriftSource {
  reports(): readonly {
    readonly model: string;
    readonly version: string;
    readonly scores: readonly { readonly feature: string; readonly stat: string; readonly value: number }[];
  }[];
}

const EMPTY: WindowStats = Object.freeze({ requests: 0, errors: 0, clientErrors: 0, errorRate: 0, p99Ms: undefined });

/**
 * The server's metrics, in a registry of their own (not prom-client's global one, so embedding applications keep
 * theirs): calls, errors and latency per model version as the service observes them, batch sizes as the batcher
 * reports them, and gauges read at scrape time (queue depth, running requests, load time, process memory).
 * `windowStats()` gives guardrails the recent error rate and p99 without parsing Prometheus text.
 */
export class ServerMetrics {
  readonly registry = new Registry();
  /** Add to every ModelService (ServiceOptions.observers). */
  readonly observer: ServiceObserver = { onInference: (event) => this.record(event) };
  /** Per-pipeline requests, errors, latency and step times (pipelines.ts). */
  readonly pipelines: PipelineMetrics;
  /** Pass to batchingScheduler({ observer }). */
  readonly batches: BatchObserver = { onBatch: (event) => this.recordBatch(event) };

  private readonly series = new Map<string, Map<string, Series>>();
  private repository: Pick<ServiceRepository, 'services'> | undefined;
  private drift: DriftSource | undefined;
  private readonly windowOptions: WindowOptions;
  private readonly now: (() => number) | undefined;
  private readonly requests: Counter<Label>;
  private readonly errors: Counter<Label | 'code'>;
  private readonly latency: Histogram<Label>;
  private readonly batchSize: Histogram<Label>;

  constructor(options: MetricsOptions = {}) {
    this.windowOptions = { ...DEFAULT_WINDOW, ...options.window };
    this.now = options.now;
    const registers = [this.registry];
    this.requests = new Counter({
      name: 'outpost_inference_requests_total',
      help: 'Inference calls that finished, successful or not',
      labelNames: LABELS,
      registers,
    });
    this.errors = new Counter({
      name: 'outpost_inference_errors_total',
      help: 'Inference calls that failed, by Outpost error code',
      labelNames: [...LABELS, 'code'],
      registers,
    });
    this.latency = new Histogram({
      name: 'outpost_inference_duration_seconds',
      help: 'Latency of successful inference calls, queueing included',
      labelNames: LABELS,
      buckets: [...(options.latencyBuckets ?? LATENCY_BUCKETS)],
      registers,
    });
    this.batchSize = new Histogram({
      name: 'outpost_batch_size',
      help: 'Rows per batch the dynamic batcher ran',
      labelNames: LABELS,
      buckets: [...(options.batchSizeBuckets ?? BATCH_SIZE_BUCKETS)],
      registers,
    });
    this.pipelines = new PipelineMetrics(this.registry, options.latencyBuckets ?? LATENCY_BUCKETS, {
      options: this.windowOptions,
      ...(this.now === undefined ? {} : { now: this.now }),
    });
    this.registerGauges();
  }

  /**
   * Where the scrape-time gauges (queue depth, running, load time) find the served models. Separate from the
   * constructor because the repository's services take `observer` and `batches` from this object.
   */
  watch(repository: Pick<ServiceRepository, 'services'>): this {
    this.repository = repository;
    return this;
  }

  /** Where the drift gauge finds its scores (runtime/monitor's DriftMonitor); without it the gauge is empty. */
  watchDrift(source: DriftSource): this {
    this.drift = source;
    return this;
  }

  /** The Prometheus text exposition for GET /metrics. */
  text(): Promise<string> {
    return this.registry.metrics();
  }

  /** The Content-Type header to serve text() with. */
  get contentType(): string {
    return this.registry.contentType;
  }

  /** Requests, errors, error rate and p99 of one version over the sliding window (since reset(), if sooner). */
  windowStats(name: string, version: string): WindowStats {
    return this.series.get(name)?.get(version)?.window.stats() ?? EMPTY;
  }

  /** Starts one version's window afresh, e.g. when a deployment makes it live; Prometheus counters are unaffected. */
  reset(name: string, version: string): void {
    this.series.get(name)?.get(version)?.window.reset();
  }

  private record(event: InferenceEvent): void {
    const series = this.seriesOf(event.name, event.version);
    series.requests.inc();
    let outcome: Outcome = 'ok';
    if (event.error === undefined) series.latency.observe(event.ms / 1000);
    else {
      const code: ErrorCode = isOutpostError(event.error) ? event.error.code : 'INTERNAL';
      this.errors.inc({ ...series.labels, code });
      outcome = CALLER_FAULTS.has(code) ? 'client' : 'error';
    }
    series.window.record(event.ms, outcome);
  }

  private recordBatch(event: BatchEvent): void {
    this.seriesOf(event.name, event.version).batchSize.observe(event.rows);
  }

  /** Two-level lookup: no key string is built per call. */
  private seriesOf(name: string, version: string): Series {
    let versions = this.series.get(name);
    if (versions === undefined) this.series.set(name, (versions = new Map<string, Series>()));
    let series = versions.get(version);
    if (series === undefined) {
      const labels = Object.freeze({ model: name, version });
      series = {
        labels,
        window: new SlidingWindow(this.windowOptions, this.now),
        requests: this.requests.labels(labels),
        latency: this.latency.labels(labels),
        batchSize: this.batchSize.labels(labels),
      };
      versions.set(version, series);
      series.requests.inc(0); // the series exists from its first call, so rate() sees it start at zero
    }
    return series;
  }

  /** Gauges computed when scraped, so the hot path pays nothing for them. */
  private registerGauges(): void {
    const registers = [this.registry];
    const services = () => this.repository?.services() ?? [];
    new Gauge({
      name: 'outpost_queued_requests',
      help: 'Requests waiting in the scheduler of each served version',
      labelNames: LABELS,
      registers,
      collect() {
        this.reset(); // versions no longer served disappear
        for (const s of services()) for (const l of s.load()) this.set({ model: s.name, version: l.version }, l.queued);
      },
    });
    new Gauge({
      name: 'outpost_running_requests',
      help: 'Requests running now on each served version',
      labelNames: LABELS,
      registers,
      collect() {
        this.reset();
        for (const s of services())
          for (const l of s.load()) this.set({ model: s.name, version: l.version }, l.running);
      },
    });
    new Gauge({
      name: 'outpost_model_load_seconds',
      help: 'Time each loaded version took to load (verify, create the session, warm up)',
      labelNames: LABELS,
      registers,
      collect() {
        this.reset();
        for (const s of services()) {
          const shadow = s.shadowModel();
          for (const m of shadow === undefined ? s.versions() : [...s.versions(), shadow])
            this.set({ model: m.name, version: m.version }, m.loadMs / 1000);
        }
      },
    });
    const drift = () => this.drift?.reports() ?? [];
    new Gauge({
      name: 'outpost_drift_score',
      help: 'Drift of live traffic from the artifact baseline per feature: population stability index (psi) or Kolmogorov-Smirnov statistic (ks)',
      labelNames: ['model', 'version', 'feature', 'stat'],
      registers,
      collect() {
        this.reset();
        for (const r of drift())
          for (const s of r.scores)
            this.set({ model: r.model, version: r.version, feature: s.feature, stat: s.stat }, s.value);
      },
    });
    new Gauge({
      name: 'outpost_process_memory_bytes',
      help: 'Memory of this process: resident set, V8 heap, memory outside the heap (tensors live there)',
      labelNames: ['kind'],
      registers,
      collect() {
        const m = process.memoryUsage();
        this.set({ kind: 'rss' }, m.rss);
        this.set({ kind: 'heap_total' }, m.heapTotal);
        this.set({ kind: 'heap_used' }, m.heapUsed);
        this.set({ kind: 'external' }, m.external);
        this.set({ kind: 'array_buffers' }, m.arrayBuffers);
      },
    });
  }
}
