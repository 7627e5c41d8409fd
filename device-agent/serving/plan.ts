import type { VerdictFile } from '../../runtime/artifact/index.js';
import { tunedLoadOptions, type TuneChoiceFile } from '../../runtime/tuning/index.js';
import { OutpostError } from '../../runtime/errors.js';
import { loadModel, type Model } from '../../runtime/model/index.js';
import { isPipelineArtifact, Pipeline } from '../../runtime/pipeline/index.js';
import type { JobDocument } from '../protocol/index.js';
import type { ActiveModels } from './active-models.js';
import { openInstalledPipeline } from './active-pipelines.js';
import { ModelStore, type ServingPlan } from '../storage/model-store.js';

export interface PlanContext {
  readonly store: ModelStore;
  readonly models: ActiveModels;
  readonly trustedKeys: readonly string[];
  readonly requireSignature: boolean;
  /** `outpost tune` choices by model name. */
  readonly tuning?: ReadonlyMap<string, TuneChoiceFile> | undefined;
  /** Installed files already hashed and unchanged since are not hashed again; the record is saved after each load. */
  readonly verdicts?: VerdictFile | undefined;
}

/**
 * Loads an installed version as its self-test chose it (after a restart, without re-running the test), or as
 * `outpost tune` chose it on this device when the tuned version is this one; the tuned thread count applies to
 * every version of the model.
 */
export async function loadInstalled(
  ctx: Pick<PlanContext, 'store' | 'trustedKeys' | 'requireSignature' | 'tuning' | 'verdicts'>,
  model: string,
  version: string,
): Promise<Model> {
  const choice = ctx.tuning?.get(model);
  const selection = await ctx.store.selection(model, version);
  const absent = await ctx.store.absentVariants(model, version);
  const loaded = await loadModel(ctx.store.versionDir(model, version), {
    ...(absent.length === 0 ? {} : { absentVariants: absent }),
    ...(selection === undefined ? {} : { variant: selection.variant, backend: selection.backend }),
    ...(choice === undefined ? {} : tunedLoadOptions(choice, version)),
    ...(ctx.verdicts === undefined ? {} : { verdicts: ctx.verdicts }),
    trustedKeys: ctx.trustedKeys,
    requireSignature: ctx.requireSignature,
  });
  await ctx.verdicts?.save();
  return loaded;
}

/**
 * The plan after `version` passed its self-test, from the job's rollout and the plan before it:
 * replace → it alone; canary → the first production version keeps (100 − p) %, it takes p %; shadow → production
 * unchanged, it mirrors p % of requests.
 */
export function nextPlan(
  rollout: JobDocument['rollout'],
  before: ServingPlan | undefined,
  version: string,
): ServingPlan {
  const mode = rollout?.mode ?? 'replace';
  const percent = rollout?.percent ?? 0;
  const base = before?.production[0]?.version;
  if (mode === 'replace' || base === undefined || base === version) {
    if (mode === 'shadow' && (base === undefined || base === version)) {
      throw new OutpostError(
        'INVALID_ARGUMENT',
        `a shadow of ${version} needs a different production version to compare with; none is serving`,
      );
    }
    return { production: [{ version, weight: 1 }] };
  }
  if (mode === 'canary') {
    if (percent >= 100) return { production: [{ version, weight: 1 }] };
    return {
      production: [
        { version: base, weight: 100 - percent },
        { version, weight: percent },
      ],
    };
  }
  return { production: before?.production ?? [{ version: base, weight: 1 }], shadow: { version, percent } };
}

/**
 * Serves exactly what `plan` names for `name`: versions already loaded are reused, others loaded from the store. A
 * pipeline's plan (production weights: a canary; a shadow) is served from `models.pipelines` the same way, and a
 * name that changes between model and pipeline stops being served as the other. Every version of one plan is of
 * one kind: a model and a pipeline never share a name's traffic (INVALID_ARGUMENT).
 */
export async function applyPlan(
  ctx: PlanContext,
  name: string,
  plan: ServingPlan,
  fresh?: Model | Pipeline,
): Promise<void> {
  const versions = ModelStore.planVersions(plan);
  const kinds = await Promise.all(versions.map((v) => isPipelineArtifact(ctx.store.versionDir(name, v))));
  if (kinds.some((k) => k !== kinds[0])) throw mixedPlan(name, versions, kinds);
  if (kinds[0] === true) {
    await applyPipelinePlan(ctx, name, plan, fresh instanceof Pipeline ? fresh : undefined);
    return;
  }
  if (ctx.models.pipelines.get(name) !== undefined) await ctx.models.pipelines.remove(name);
  const model = fresh instanceof Pipeline ? undefined : fresh;
  const load = async (version: string): Promise<Model> =>
    model?.version === version
      ? model
      : (ctx.models.loaded(name, version) ?? (await loadInstalled(ctx, name, version)));
  const production = [];
  for (const p of plan.production) production.push({ model: await load(p.version), weight: p.weight });
  const shadow =
    plan.shadow === undefined ? undefined : { model: await load(plan.shadow.version), percent: plan.shadow.percent };
  await ctx.models.serve(name, production, shadow);
}

/**
 * A pipeline's plan: each version the opened one (`fresh`, the self-tested one) or the one already served, else
 * opened from the store. What this call opened and does not serve (opening another failed, serving refused the plan)
 * is released again, a pipeline holds whole models; on a failure what served before keeps serving.
 */
async function applyPipelinePlan(
  ctx: PlanContext,
  name: string,
  plan: ServingPlan,
  fresh: Pipeline | undefined,
): Promise<void> {
  const opened: Pipeline[] = fresh === undefined ? [] : [fresh];
  const open = async (version: string): Promise<Pipeline> => {
    const found = opened.find((p) => p.version === version) ?? ctx.models.pipelines.loaded(name, version);
    if (found !== undefined) return found;
    const pipeline = await openInstalledPipeline(ctx, name, version);
    opened.push(pipeline);
    return pipeline;
  };
  try {
    const production = [];
    for (const p of plan.production) production.push({ pipeline: await open(p.version), weight: p.weight });
    const shadow =
      plan.shadow === undefined
        ? undefined
        : { pipeline: await open(plan.shadow.version), percent: plan.shadow.percent };
    if (ctx.models.service(name) !== undefined) await ctx.models.remove(name);
    await ctx.models.pipelines.serve(name, production, shadow);
  } finally {
    const served = new Set(ctx.models.pipelines.list());
    for (const p of opened) if (!served.has(p)) await p.release().catch(() => undefined);
  }
}

/** A plan naming both model and pipeline versions of one name. */
function mixedPlan(name: string, versions: readonly string[], kinds: readonly boolean[]): OutpostError {
  const listed = versions.map((v, i) => `${v} (${kinds[i] === true ? 'pipeline' : 'model'})`).join(', ');
  return new OutpostError(
    'INVALID_ARGUMENT',
    `${name}: a model and a pipeline cannot share its traffic (canary or shadow); the plan names ${listed}. Deploy it with the replace rollout`,
    { details: { model: name, versions: [...versions] } },
  );
}
