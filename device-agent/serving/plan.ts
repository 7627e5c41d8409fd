import type { VerdictFile } from '../../runtime/artifact/index.js';
import { tunedLoadOptions, type TuneChoiceFile } from '../../runtime/tuning/index.js';
import { OutpostError } from '../../runtime/errors.js';
import { loadModel, type Model } from '../../runtime/model/index.js';
import { isPipelineArtifact, Pipeline } from '../../runtime/pipeline/index.js';
import type { JobDocument } from '../protocol/index.js';
import type { ActiveModels } from './active-models.js';
import { openInstalledPipeline } from './active-pipelines.js';
import type { ModelStore, ServingPlan } from '../storage/model-store.js';

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
 * pipeline (one production version: a pipeline has no canary or shadow) is served from `models.pipelines` instead,
 * and a name that changes between model and pipeline stops being served as the other.
 */
export async function applyPlan(
  ctx: PlanContext,
  name: string,
  plan: ServingPlan,
  fresh?: Model | Pipeline,
): Promise<void> {
  const [first] = plan.production;
  if (first !== undefined && (await isPipelineArtifact(ctx.store.versionDir(name, first.version)))) {
    if (plan.production.length > 1 || plan.shadow !== undefined) throw pipelineRollout(name);
    const served = ctx.models.pipelines.get(name);
    const pipeline =
      fresh instanceof Pipeline && fresh.version === first.version
        ? fresh
        : served?.version === first.version
          ? served
          : await openInstalledPipeline(ctx, name, first.version);
    if (ctx.models.service(name) !== undefined) await ctx.models.remove(name);
    await ctx.models.pipelines.serve(pipeline);
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

/** A canary or shadow rollout of a pipeline: refused (issue 17 leaves traffic splitting to single models). */
export function pipelineRollout(name: string): OutpostError {
  return new OutpostError(
    'INVALID_ARGUMENT',
    `${name} is a pipeline: it serves one version at a time; deploy it with the replace rollout (no canary or shadow)`,
    { details: { pipeline: name } },
  );
}
