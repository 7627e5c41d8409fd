import { Counter, Gauge, Histogram, type Registry } from './prom.js';
import type { ErrorCode } from '../../errors.js';
import { CALLER_FAULTS } from '../http/status.js';
import type { PipelineService } from '../serving/pipeline-service.js';
import { DEFAULT_WINDOW, SlidingWindow, type WindowOptions, type WindowStats } from './window.js';

const LABELS = ['pipeline', 'version'] as const;

const EMPTY: WindowStats = Object.freeze({ requests: 0, errors: 0, clientErrors: 0, errorRate: 0, p99Ms: undefined });

/** One finished pipeline call, as listeners hear it (the agent's guardrails watch a pipeline's bake with it). */
export interface PipelineCall {
  readonly pipeline: string;
  readonly version: string;
  /** End to end; 0 for a failed call. */
  readonly ms: number;
  readonly error?: unknown;
}

/**
 * Per-pipeline metrics beside the per-model ones, in the server's registry: requests, errors by code, end-to-end
 * latency and the time of each step (`step` is the step id of the pipeline definition), so a slow recogniser or a
 * slow crop shows as itself on a dashboard rather than inside one number. `windowStats()` gives the agent's health
 * report a version's recent requests, errors and p99 as ServerMetrics does for models.
 */
export class PipelineMetrics {
  private readonly requests: Counter<(typeof LABELS)[number]>;
  private readonly errors: Counter<(typeof LABELS)[number] | 'code'>;
  private readonly latency: Histogram<(typeof LABELS)[number]>;
  private readonly steps: Histogram<(typeof LABELS)[number] | 'step'>;
  private readonly listeners: ((call: PipelineCall) => void)[] = [];
  private readonly windows = new Map<string, Map<string, SlidingWindow>>();

  private services: () => readonly PipelineService[] = () => [];

  constructor(
    registry: Registry,
    buckets: readonly number[],
    private readonly window: { readonly options?: WindowOptions; readonly now?: () => number } = {},
  ) {
    const registers = [registry];
    const shadows = () =>
      this.services().flatMap((s) => {
        const report = s.shadowReport();
        return report === undefined ? [] : [{ pipeline: s.name, version: report.version, report }];
      });
    new Gauge({
      name: 'outpost_pipeline_shadow_compared',
      help: 'Requests mirrored to a pipeline shadow version and compared with production',
      labelNames: LABELS,
      registers,
      collect() {
        this.reset();
        for (const { pipeline, version, report } of shadows()) this.set({ pipeline, version }, report.compared);
      },
    });
    new Gauge({
      name: 'outpost_pipeline_shadow_exact_match_ratio',
      help: "Share of a pipeline shadow's BYTES outputs (e.g. OCR text) exactly equal to production's",
      labelNames: LABELS,
      registers,
      collect() {
        this.reset();
        for (const { pipeline, version, report } of shadows())
          if (report.exactMatch !== undefined) this.set({ pipeline, version }, report.exactMatch);
      },
    });
    this.requests = new Counter({
      name: 'outpost_pipeline_requests_total',
      help: 'Pipeline calls that finished, successful or not',
      labelNames: LABELS,
      registers,
    });
    this.errors = new Counter({
      name: 'outpost_pipeline_errors_total',
      help: 'Pipeline calls that failed, by Outpost error code',
      labelNames: [...LABELS, 'code'],
      registers,
    });
    this.latency = new Histogram({
      name: 'outpost_pipeline_duration_seconds',
      help: 'Latency of successful pipeline calls, every step included',
      labelNames: LABELS,
      buckets: [...buckets],
      registers,
    });
    this.steps = new Histogram({
      name: 'outpost_pipeline_step_duration_seconds',
      help: 'Time of each step of successful pipeline calls',
      labelNames: [...LABELS, 'step'],
      buckets: [...buckets],
      registers,
    });
  }

  /** Told every finished call after it is counted; a listener must not throw or block. */
  onCall(listener: (call: PipelineCall) => void): void {
    this.listeners.push(listener);
  }

  /** Where the shadow gauges read from: the served pipelines (StaticPipelines.services). */
  watch(services: () => readonly PipelineService[]): void {
    this.services = services;
  }

  /** Requests, errors, error rate and p99 of one pipeline version over the sliding window. */
  windowStats(pipeline: string, version: string): WindowStats {
    return this.windows.get(pipeline)?.get(version)?.stats() ?? EMPTY;
  }

  private windowOf(pipeline: string, version: string): SlidingWindow {
    let versions = this.windows.get(pipeline);
    if (versions === undefined) this.windows.set(pipeline, (versions = new Map<string, SlidingWindow>()));
    let window = versions.get(version);
    if (window === undefined) {
      window = new SlidingWindow(this.window.options ?? DEFAULT_WINDOW, this.window.now);
      versions.set(version, window);
    }
    return window;
  }

  succeeded(pipeline: string, version: string, totalMs: number, timings: Readonly<Record<string, number>>): void {
    this.requests.inc({ pipeline, version });
    this.windowOf(pipeline, version).record(totalMs, 'ok');
    for (const listener of this.listeners) listener({ pipeline, version, ms: totalMs });
    this.latency.observe({ pipeline, version }, totalMs / 1000);
    for (const [step, ms] of Object.entries(timings)) this.steps.observe({ pipeline, version, step }, ms / 1000);
  }

  failed(pipeline: string, version: string, code: string, error?: unknown): void {
    this.requests.inc({ pipeline, version });
    this.errors.inc({ pipeline, version, code });
    this.windowOf(pipeline, version).record(0, CALLER_FAULTS.has(code as ErrorCode) ? 'client' : 'error');
    for (const listener of this.listeners) listener({ pipeline, version, ms: 0, error });
  }
}
