import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { VerdictFile } from '../../runtime/artifact/index.js';
import { MANIFEST_FILE } from '../../runtime/artifact/index.js';
import { logger } from '../../runtime/log.js';
import { openPipeline, type Pipeline } from '../../runtime/pipeline/index.js';
import { PipelineService, type PipelineEndpoints, type PipelineServiceOptions } from '../../runtime/server/index.js';
import type { ModelStore } from '../storage/model-store.js';

const log = logger('agent.pipelines');

/** A pipeline's selection names this as its variant (a pipeline has none; its models carry theirs). */
export const PIPELINE_SELECTION = 'pipeline';

/**
 * The agent's served pipelines (docs/pipelines.md, "Deploying a pipeline"), as ActiveModels holds models: one
 * PipelineService per name, whose production versions (with traffic weights: a canary) and shadow follow the
 * pipeline's serving plan, and whose observers (data capture, the agent's status) see every production call. The
 * runtime server answers `POST /v2/models/<pipeline>[/versions/<v>]/infer` from here. A change happens in one step,
 * so a request sees the old set or the new one, never none; versions no longer named are released after their
 * in-flight runs (Pipeline.release waits on its models).
 */
export class ActivePipelines implements PipelineEndpoints {
  private readonly byName = new Map<string, PipelineService>();

  constructor(private readonly options: PipelineServiceOptions = {}) {}

  get(name: string): PipelineService | undefined {
    return this.byName.get(name);
  }

  names(): readonly string[] {
    return [...this.byName.keys()];
  }

  services(): readonly PipelineService[] {
    return [...this.byName.values()];
  }

  /** The opened version of `name`, production or shadow. */
  loaded(name: string, version: string): Pipeline | undefined {
    return opened(this.byName.get(name)).find((p) => p.version === version);
  }

  /** Every opened pipeline, production and shadow. */
  list(): readonly Pipeline[] {
    return this.services().flatMap((s) => opened(s));
  }

  /** Serves `pipeline` as the only version of its name from now on. */
  async swap(pipeline: Pipeline): Promise<void> {
    await this.serve(pipeline.name, [{ pipeline, weight: 1 }]);
  }

  /** Production versions with traffic weights and an optional shadow for `name`, in one step. */
  async serve(
    name: string,
    production: readonly { pipeline: Pipeline; weight: number }[],
    shadow?: { pipeline: Pipeline; percent: number },
  ): Promise<void> {
    let service = this.byName.get(name);
    const before = opened(service);
    const created = service === undefined;
    service ??= new PipelineService(name, this.options);
    // Both checked (names, weights, percent) before either changes: a refusal leaves the service as it was.
    const check = new PipelineService(name);
    check.setVersions(production);
    check.setShadow(shadow?.pipeline, shadow?.percent ?? 0);
    service.setVersions(production);
    service.setShadow(shadow?.pipeline, shadow?.percent ?? 0);
    if (created) this.byName.set(name, service);
    log.info(
      {
        pipeline: name,
        production: production.map((p) => `${p.pipeline.version}×${p.weight}`),
        ...(shadow === undefined ? {} : { shadow: `${shadow.pipeline.version}@${shadow.percent}%` }),
      },
      'serving',
    );
    const kept = new Set<Pipeline>([
      ...production.map((p) => p.pipeline),
      ...(shadow === undefined ? [] : [shadow.pipeline]),
    ]);
    for (const old of before) if (!kept.has(old)) await old.release();
  }

  async remove(name: string): Promise<void> {
    const service = this.byName.get(name);
    this.byName.delete(name);
    for (const pipeline of opened(service)) await pipeline.release();
  }

  async close(): Promise<void> {
    for (const name of [...this.byName.keys()]) await this.remove(name);
  }
}

/** A service's production versions and its shadow. */
function opened(service: PipelineService | undefined): Pipeline[] {
  if (service === undefined) return [];
  const shadow = service.shadowPipeline();
  return shadow === undefined ? [...service.versions()] : [...service.versions(), shadow];
}

export interface PipelineLoadContext {
  readonly store: ModelStore;
  readonly trustedKeys: readonly string[];
  readonly requireSignature: boolean;
  readonly backend?: 'auto' | 'native' | 'wasm';
  readonly verdicts?: VerdictFile | undefined;
}

/**
 * Opens an installed pipeline version (verified again, bundled models from inside it); a model it references by
 * name@version is this device's installed version of that model, and a missing one is PIPELINE_MODEL_MISSING.
 */
export async function openInstalledPipeline(
  ctx: PipelineLoadContext,
  name: string,
  version: string,
): Promise<Pipeline> {
  const selection = await ctx.store.selection(name, version);
  const backend = selection?.backend ?? ctx.backend;
  // Bundled models' variants not fetched (files layout, device-agent/fetch-choice.ts): excused, never loaded.
  const absent = await ctx.store.absentVariants(name, version);
  const pipeline = await openPipeline(ctx.store.versionDir(name, version), {
    ...(absent.length === 0 ? {} : { absentVariants: absent }),
    trustedKeys: ctx.trustedKeys,
    requireSignature: ctx.requireSignature,
    ...(backend === undefined ? {} : { backend }),
    ...(ctx.verdicts === undefined ? {} : { verdicts: ctx.verdicts }),
    resolveModel: (model, pinned) => {
      const dir = ctx.store.versionDir(model, pinned);
      return existsSync(join(dir, MANIFEST_FILE)) ? dir : undefined;
    },
  });
  await ctx.verdicts?.save();
  return pipeline;
}

/** The backend a pipeline's models run on (openPipeline gives every model the same choice), for its selection. */
export function pipelineBackend(pipeline: Pipeline): 'native' | 'wasm' {
  return Object.values(pipeline.models)[0]?.backend ?? 'native';
}
