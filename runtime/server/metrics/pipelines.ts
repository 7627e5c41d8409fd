import { Counter, Gauge, Histogram, type Registry } from './prom.js';
import type { PipelineService } from '../serving/pipeline-service.js';

const LABELS = ['pipeline', 'version'] as const;

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
 * slow crop shows as itself on a dashboard rather than inside one number.
 */
export class PipelineMetrics {
  private readonly requests: Counter<(typeof LABELS)[number]>;
  private readonly errors: Counter<(typeof LABELS)[number] | 'code'>;
  private readonly latency: Histogram<(typeof LABELS)[number]>;
  private readonly steps: Histogram<(typeof LABELS)[number] | 'step'>;
  private readonly listeners: ((call: PipelineCall) => void)[] = [];

  private services: () => readonly PipelineService[] = () => [];

  constructor(registry: Registry, buckets: readonly number[]) {
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

  succeeded(pipeline: string, version: string, totalMs: number, timings: Readonly<Record<string, number>>): void {
    this.requests.inc({ pipeline, version });
    for (const listener of this.listeners) listener({ pipeline, version, ms: totalMs });
    this.latency.observe({ pipeline, version }, totalMs / 1000);
    for (const [step, ms] of Object.entries(timings)) this.steps.observe({ pipeline, version, step }, ms / 1000);
  }

  failed(pipeline: string, version: string, code: string, error?: unknown): void {
    this.requests.inc({ pipeline, version });
    this.errors.inc({ pipeline, version, code });
    for (const listener of this.listeners) listener({ pipeline, version, ms: 0, error });
  }
}
