import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { VerdictFile } from '../../runtime/artifact/index.js';
import { MANIFEST_FILE } from '../../runtime/artifact/index.js';
import { logger } from '../../runtime/log.js';
import { openPipeline, type Pipeline } from '../../runtime/pipeline/index.js';
import type { PipelineEndpoints } from '../../runtime/server/index.js';
import type { ModelStore } from '../storage/model-store.js';

const log = logger('agent.pipelines');

/** A pipeline's selection names this as its variant (a pipeline has none; its models carry theirs). */
export const PIPELINE_SELECTION = 'pipeline';

/**
 * The agent's served pipelines (docs/pipelines.md, "Deploying a pipeline"), one version each: the runtime server
 * answers `POST /v2/models/<pipeline>/infer` from here. A pipeline is swapped in one step, so a request sees the old
 * version or the new one; the old one is released after its in-flight runs (Pipeline.release waits on its models).
 */
export class ActivePipelines implements PipelineEndpoints {
  private readonly byName = new Map<string, Pipeline>();

  get(name: string): Pipeline | undefined {
    return this.byName.get(name);
  }

  names(): readonly string[] {
    return [...this.byName.keys()];
  }

  list(): readonly Pipeline[] {
    return [...this.byName.values()];
  }

  async serve(pipeline: Pipeline): Promise<void> {
    const before = this.byName.get(pipeline.name);
    this.byName.set(pipeline.name, pipeline);
    log.info({ pipeline: pipeline.name, version: pipeline.version, steps: pipeline.steps.length }, 'serving');
    if (before !== undefined && before !== pipeline) await before.release();
  }

  async remove(name: string): Promise<void> {
    const pipeline = this.byName.get(name);
    this.byName.delete(name);
    await pipeline?.release();
  }

  async close(): Promise<void> {
    for (const name of [...this.byName.keys()]) await this.remove(name);
  }
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
