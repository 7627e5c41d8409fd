import { isOutpostError, OutpostError } from '../../errors.js';
import { logger } from '../../log.js';
import type { Feeds, Model, Outputs } from '../../model/model.js';
import { directScheduler, type Scheduler, type SchedulerFactory } from '../scheduling/direct.js';
import { ShadowStats, type ShadowReport } from './shadow.js';
import { weightedPick } from './traffic.js';

const log = logger('server.service');

/** One served call, as observers (metrics, data capture, guardrails) see it after it finished. */
export interface InferenceEvent {
  readonly name: string;
  readonly version: string;
  readonly ms: number;
  readonly feeds: Feeds;
  readonly outputs?: Outputs;
  readonly error?: unknown;
}

export interface ServiceObserver {
  /** Called after every production call; must not throw or block (queue work of its own). */
  onInference(event: InferenceEvent): void;
}

interface Serving {
  readonly model: Model;
  readonly scheduler: Scheduler;
  /** Share of traffic (production variants); only relative sizes matter. */
  readonly weight: number;
}

export interface ServiceOptions {
  readonly scheduler?: SchedulerFactory;
  readonly observers?: readonly ServiceObserver[];
  /** Source of randomness for traffic split and shadow sampling (tests pass a seeded one). */
  readonly random?: () => number;
}

/**
 * Everything served under one model name: the production versions and their traffic weights (SageMaker's
 * production variants), an optional shadow version that gets a copy of a percentage of requests and is only
 * compared, never answered with; a scheduler per version (concurrency, queue, batching); observers for metrics,
 * data capture and guardrails.
 */
export class ModelService {
  private serving: Serving[] = [];
  private shadow: { serving: Serving; stats: ShadowStats } | undefined;
  private readonly schedulerFactory: SchedulerFactory;
  private readonly random: () => number;
  private readonly observers: ServiceObserver[];

  constructor(
    readonly name: string,
    options: ServiceOptions = {},
  ) {
    this.schedulerFactory = options.scheduler ?? directScheduler();
    this.random = options.random ?? Math.random;
    this.observers = [...(options.observers ?? [])];
  }

  addObserver(observer: ServiceObserver): void {
    this.observers.push(observer);
  }

  /** The production versions; the previous ones' schedulers are closed (their models are the caller's to release). */
  async setVersions(entries: readonly { model: Model; weight?: number }[]): Promise<void> {
    const previous = this.serving;
    this.serving = entries.map(({ model, weight = 1 }) => {
      if (model.name !== this.name)
        throw new OutpostError('INVALID_ARGUMENT', `${model.name} cannot serve as "${this.name}"`);
      const kept = previous.find((s) => s.model === model);
      return { model, scheduler: kept?.scheduler ?? this.schedulerFactory(model), weight };
    });
    for (const s of previous) if (!this.serving.some((n) => n.scheduler === s.scheduler)) await s.scheduler.close();
  }

  async setShadow(model: Model | undefined, percent = 0): Promise<void> {
    const old = this.shadow;
    this.shadow =
      model === undefined || percent <= 0
        ? undefined
        : {
            serving: {
              model,
              scheduler: old?.serving.model === model ? old.serving.scheduler : this.schedulerFactory(model),
              weight: 0,
            },
            stats: new ShadowStats(model.version, percent),
          };
    if (old !== undefined && old.serving.scheduler !== this.shadow?.serving.scheduler)
      await old.serving.scheduler.close();
  }

  versions(): readonly Model[] {
    return this.serving.map((s) => s.model);
  }

  /** Traffic weights of `versions()`, in the same order. */
  weights(): readonly number[] {
    return this.serving.map((s) => s.weight);
  }

  shadowModel(): Model | undefined {
    return this.shadow?.serving.model;
  }

  shadowReport(): ShadowReport | undefined {
    return this.shadow?.stats.report();
  }

  /** Requests waiting and running, per version (for metrics and overload decisions). */
  load(): { version: string; queued: number; running: number }[] {
    return this.serving.map((s) => ({
      version: s.model.version,
      queued: s.scheduler.queued,
      running: s.scheduler.running,
    }));
  }

  /** The version that serves this call: the one asked for, else a weighted draw among production versions. */
  select(version?: string): Model | undefined {
    return this.pick(version)?.model;
  }

  private pick(version?: string): Serving | undefined {
    if (version !== undefined) return this.serving.find((s) => s.model.version === version);
    return weightedPick(this.serving, this.random);
  }

  /**
   * Runs one production call: on `version` when named, else on `chosen` (a model `select()` drew for this request,
   * so a caller that checked the request against it gets that same version), else on a weighted draw. Calls that
   * did not name a version may be mirrored to the shadow.
   */
  async infer(
    feeds: Feeds,
    version?: string,
    chosen?: Model,
    signal?: AbortSignal,
  ): Promise<{ model: Model; outputs: Outputs }> {
    const serving =
      (version === undefined && chosen !== undefined ? this.serving.find((s) => s.model === chosen) : undefined) ??
      this.pick(version);
    if (serving === undefined) {
      throw new OutpostError(
        'MODEL_NOT_FOUND',
        `model "${this.name}" has no version ${version ?? '(none loaded)'}; versions: ${this.serving.map((s) => s.model.version).join(', ') || 'none'}`,
      );
    }
    const started = performance.now();
    let outputs: Outputs;
    try {
      outputs = await serving.scheduler.run(feeds, signal);
    } catch (error) {
      // Never reached the model: not a call for metrics, capture or guardrails to count.
      if (isOutpostError(error, 'REQUEST_CANCELLED')) throw error;
      this.notify({ name: this.name, version: serving.model.version, ms: performance.now() - started, feeds, error });
      throw error;
    }
    const ms = performance.now() - started;
    this.notify({ name: this.name, version: serving.model.version, ms, feeds, outputs });
    const shadow = this.shadow;
    if (shadow !== undefined && version === undefined && this.random() * 100 < shadow.stats.percent) {
      // Mirrored after production answered, off the caller's path; its result is compared and dropped.
      const shadowStarted = performance.now();
      shadow.serving.scheduler.run(feeds).then(
        (shadowOutputs) => shadow.stats.record(outputs, shadowOutputs, ms, performance.now() - shadowStarted),
        (error: unknown) => {
          shadow.stats.error();
          log.debug({ model: this.name, shadow: shadow.serving.model.version, error }, 'shadow call failed');
        },
      );
    }
    return { model: serving.model, outputs };
  }

  private notify(event: InferenceEvent): void {
    for (const observer of this.observers) {
      try {
        observer.onInference(event);
      } catch (error) {
        log.warn({ error }, 'inference observer failed');
      }
    }
  }

  async close(): Promise<void> {
    for (const s of this.serving) await s.scheduler.close();
    await this.shadow?.serving.scheduler.close();
    this.serving = [];
    this.shadow = undefined;
  }
}
