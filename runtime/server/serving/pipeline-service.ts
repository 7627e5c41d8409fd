import { OutpostError, isOutpostError } from '../../errors.js';
import { logger } from '../../log.js';
import type { Feeds } from '../../model/model.js';
import type { Pipeline, PipelineRun } from '../../pipeline/index.js';
import type { ServiceObserver, InferenceEvent } from './service.js';
import { ShadowStats, type ShadowReport } from './shadow.js';
import { weightedPick } from './traffic.js';

const log = logger('server.pipeline-service');

/**
 * Shadow runs of a pipeline in flight at once; a request mirrored beyond this is not mirrored (and not counted as
 * compared). A pipeline call is whole models plus transforms: unbounded mirroring would queue behind production.
 */
export const MAX_SHADOW_IN_FLIGHT = 2; // pipeline runs

export interface PipelineServiceOptions {
  /** Observers of every production call (data capture: the pipeline's input and final outputs). */
  readonly observers?: readonly ServiceObserver[];
  /** Source of randomness for the traffic split and shadow sampling (tests pass a seeded one). */
  readonly random?: () => number;
}

interface Serving {
  readonly pipeline: Pipeline;
  readonly weight: number;
}

/**
 * Everything served under one pipeline name, as ModelService is for a model: production versions with traffic
 * weights (a canary gets a small one), an optional shadow version that gets a copy of a percentage of requests
 * after production answered and is only compared (BYTES outputs such as OCR `text` by exact match, numeric ones
 * by cosine and |Δ|, shadow.ts), and observers that see each production call's input and final outputs.
 */
export class PipelineService {
  private serving: Serving[] = [];
  private shadow: { pipeline: Pipeline; stats: ShadowStats; inFlight: number } | undefined;
  private readonly random: () => number;
  private readonly observers: ServiceObserver[];

  constructor(
    readonly name: string,
    options: PipelineServiceOptions = {},
  ) {
    this.random = options.random ?? Math.random;
    this.observers = [...(options.observers ?? [])];
  }

  addObserver(observer: ServiceObserver): void {
    this.observers.push(observer);
  }

  /** The production versions and their weights (default 1 each: an equal split). */
  setVersions(entries: readonly { pipeline: Pipeline; weight?: number }[]): void {
    for (const { pipeline, weight = 1 } of entries) {
      if (pipeline.name !== this.name)
        throw new OutpostError('INVALID_ARGUMENT', `pipeline ${pipeline.name} cannot serve as "${this.name}"`);
      if (!(weight >= 0 && Number.isFinite(weight)))
        throw new OutpostError('INVALID_ARGUMENT', `${pipeline.name}@${pipeline.version}: weight ${weight} is not ≥ 0`);
    }
    this.serving = entries.map(({ pipeline, weight = 1 }) => ({ pipeline, weight }));
  }

  /** A version that gets `percent` of the production requests mirrored, never answered with; undefined stops it. */
  setShadow(pipeline: Pipeline | undefined, percent = 0): void {
    if (pipeline !== undefined && pipeline.name !== this.name)
      throw new OutpostError('INVALID_ARGUMENT', `pipeline ${pipeline.name} cannot shadow "${this.name}"`);
    if (!(percent >= 0 && percent <= 100))
      throw new OutpostError('INVALID_ARGUMENT', `shadow percent ${percent} is not within 0–100`);
    this.shadow =
      pipeline === undefined || percent <= 0
        ? undefined
        : { pipeline, stats: new ShadowStats(pipeline.version, percent), inFlight: 0 };
  }

  versions(): readonly Pipeline[] {
    return this.serving.map((s) => s.pipeline);
  }

  /** Traffic weights of `versions()`, in the same order. */
  weights(): readonly number[] {
    return this.serving.map((s) => s.weight);
  }

  shadowPipeline(): Pipeline | undefined {
    return this.shadow?.pipeline;
  }

  shadowReport(): ShadowReport | undefined {
    return this.shadow?.stats.report();
  }

  /** The version that serves this call: the one asked for (production or shadow), else a weighted draw. */
  select(version?: string): Pipeline | undefined {
    if (version === undefined) return weightedPick(this.serving, this.random)?.pipeline;
    return (
      this.serving.find((s) => s.pipeline.version === version)?.pipeline ??
      (this.shadow?.pipeline.version === version ? this.shadow.pipeline : undefined)
    );
  }

  /**
   * Runs one call on `chosen` (what `select` gave for this request). A call that did not name its version is a
   * production call: observers see it (its input and final outputs, or its error) and it may be mirrored to the
   * shadow. A call naming the shadow's version is answered by it, like any named version, and not mirrored.
   */
  async infer(feeds: Feeds, chosen: Pipeline, named: boolean): Promise<PipelineRun> {
    const started = performance.now();
    const where = { name: this.name, version: chosen.version };
    let run: PipelineRun;
    try {
      run = await chosen.run(feeds);
    } catch (error) {
      this.notify({ ...where, ms: performance.now() - started, feeds, error });
      throw error;
    }
    const ms = performance.now() - started;
    this.notify({ ...where, ms, feeds, outputs: run.outputs });
    const shadow = this.shadow;
    if (
      shadow !== undefined &&
      !named &&
      shadow.pipeline !== chosen &&
      shadow.inFlight < MAX_SHADOW_IN_FLIGHT &&
      this.random() * 100 < shadow.stats.percent
    ) {
      // Mirrored after production answered, off the caller's path; its result is compared and dropped.
      shadow.inFlight++;
      const shadowStarted = performance.now();
      shadow.pipeline.run(feeds).then(
        (mirrored) => {
          shadow.inFlight--;
          shadow.stats.record(run.outputs, mirrored.outputs, ms, performance.now() - shadowStarted);
        },
        (error: unknown) => {
          shadow.inFlight--;
          shadow.stats.error();
          const code = isOutpostError(error) ? error.code : 'INTERNAL';
          log.debug({ pipeline: this.name, shadow: shadow.pipeline.version, code }, 'shadow call failed');
        },
      );
    }
    return run;
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
}

/** The pipelines a server serves beside its models, by name. */
export interface PipelineEndpoints {
  /** A service (versions, weights, shadow, observers), or a pipeline served alone (the agent's: one version each). */
  get(name: string): PipelineService | Pipeline | undefined;
  names(): readonly string[];
}

const alone = new WeakMap<Pipeline, PipelineService>();

/** The service `get` found, or for a bare pipeline a service of that one version (built once per pipeline). */
export function serviceOf(found: PipelineService | Pipeline): PipelineService {
  if (found instanceof PipelineService) return found;
  let service = alone.get(found);
  if (service === undefined) {
    service = new PipelineService(found.name);
    service.setVersions([{ pipeline: found }]);
    alone.set(found, service);
  }
  return service;
}

/**
 * Pipelines opened once (`outpost serve`): versions of one name share its traffic equally unless weights say
 * otherwise; one version may be its shadow instead.
 */
export class StaticPipelines implements PipelineEndpoints {
  private readonly byName = new Map<string, PipelineService>();
  private readonly weightOf = new Map<Pipeline, number>();

  constructor(private readonly options: PipelineServiceOptions = {}) {}

  private serviceFor(pipeline: Pipeline): PipelineService {
    let service = this.byName.get(pipeline.name);
    if (service === undefined) {
      service = new PipelineService(pipeline.name, this.options);
      this.byName.set(pipeline.name, service);
    }
    const taken = [...service.versions(), service.shadowPipeline()].some((p) => p?.version === pipeline.version);
    if (taken) {
      throw new OutpostError('INVALID_ARGUMENT', `pipeline ${pipeline.name}@${pipeline.version} is served twice`);
    }
    return service;
  }

  add(pipeline: Pipeline, weight = 1): this {
    const service = this.serviceFor(pipeline);
    this.weightOf.set(pipeline, weight);
    service.setVersions(
      [...service.versions(), pipeline].map((p) => ({ pipeline: p, weight: this.weightOf.get(p) ?? 1 })),
    );
    return this;
  }

  /** Serves `pipeline` as the shadow of the production versions of its name, mirrored `percent` of the time. */
  addShadow(pipeline: Pipeline, percent: number): this {
    this.serviceFor(pipeline).setShadow(pipeline, percent);
    return this;
  }

  get(name: string): PipelineService | undefined {
    return this.byName.get(name);
  }

  names(): readonly string[] {
    return [...this.byName.keys()];
  }

  services(): readonly PipelineService[] {
    return [...this.byName.values()];
  }
}
