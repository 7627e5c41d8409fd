import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { logger } from '../../runtime/log.js';
import { bake } from './bake.js';
import { advance, documentOf, type DeploymentContext, type Step } from './context.js';
import { runHook } from './hooks.js';
import { applyPlan, nextPlan } from '../serving/plan.js';
import type { DeploymentState, Outcome } from '../storage/deployment-records.js';
import { ModelStore } from '../storage/model-store.js';

const log = logger('agent.deployment');

/*
 * The steps from the switch on: serve the new version as the job's rollout says, run the hooks, bake under the
 * guardrails, and put the previous serving plan back when any of that fails.
 */

export const activate: Step = async (ctx, state) => {
  // The plan before this deployment is kept in the state (first time only), so a rollback restores exactly it.
  const before = state.previousPlan ?? (await ctx.store.servingPlan(state.model));
  const plan = nextPlan(documentOf(state).rollout, before, state.version);
  if (plan.production.length === 1 && plan.production[0]?.version === state.version)
    await ctx.store.activate(state.model, state.version);
  await ctx.store.saveServingPlan(state.model, plan);
  // The self-tested model or pipeline when this process tested it; else (after a restart) applyPlan loads it.
  const tested = ctx.tested.get(state.jobId);
  ctx.tested.delete(state.jobId);
  await applyPlan(ctx, state.model, plan, tested);
  return advance(ctx, state, 'validating', before === undefined ? {} : { previousPlan: before });
};

export const validate: Step = async (ctx, state) => {
  const hook = {
    jobId: state.jobId,
    model: state.model,
    version: state.version,
    dir: ctx.store.versionDir(state.model, state.version),
    ...(state.previous === undefined ? {} : { previous: state.previous }),
  };
  await runHook(ctx.config.hooks, 'afterActivate', hook);
  await runHook(ctx.config.hooks, 'validate', hook);
  const keep = documentOf(state).keepVersions ?? ctx.config.keepVersions;
  const pinned = [
    ...ModelStore.planVersions(await ctx.store.servingPlan(state.model)),
    ...ModelStore.planVersions(state.previousPlan),
  ];
  await ctx.store.prune(state.model, keep, pinned);
  const seconds = bakeSeconds(ctx, state);
  if (seconds > 0) {
    const bakeUntil = new Date(Date.now() + seconds * 1000).toISOString();
    return advance(ctx, state, 'baking', { bakeUntil });
  }
  return advance(ctx, state, 'reporting', { outcome: succeeded(state) });
};

function succeeded(state: DeploymentState): Outcome {
  const serving = `serving (${state.variant ?? '?'} on ${state.backend ?? '?'})`;
  return {
    status: 'SUCCEEDED',
    code: 'OK',
    message: `${state.model}@${state.version} ${state.alreadyInstalled === true ? `already installed; ${serving}` : serving}`,
  };
}

/** How long the new version bakes under the guardrails: the job's `rollout.bakeSeconds`, else the config's window. */
function bakeSeconds(ctx: DeploymentContext, state: DeploymentState): number {
  const rollout = documentOf(state).rollout;
  if (ctx.guardrails === undefined || ctx.config.guardrails === undefined || rollout?.mode === 'shadow') return 0;
  return rollout?.bakeSeconds ?? ctx.config.guardrails.windowSeconds;
}

/** The guardrail window: the new version serves under watch; an alarm rolls it back (bake.ts). */
export const baking: Step = async (ctx, state) => {
  if (ctx.guardrails !== undefined) {
    const until = state.bakeUntil === undefined ? Date.now() : Date.parse(state.bakeUntil);
    const baked = bake({
      guardrails: ctx.guardrails,
      model: state.model,
      version: state.version,
      until,
      windowSeconds: bakeSeconds(ctx, state),
      signal: ctx.signal,
    });
    ctx.changed(); // the watch started: the status shows its figures from now on
    await baked;
  }
  return advance(ctx, state, 'reporting', { outcome: succeeded(state) });
};

export const rollBack: Step = async (ctx, state) => {
  const plan = state.previousPlan;
  if (plan === undefined) {
    // Nothing served before this deployment: serve nothing rather than the failed version.
    await ctx.models.remove(state.model);
    await ctx.models.pipelines.remove(state.model);
    await rm(join(ctx.store.modelDir(state.model), 'current'), { force: true });
    await rm(join(ctx.store.modelDir(state.model), 'serving.json'), { force: true });
  } else {
    const only = plan.production.length === 1 ? plan.production[0]?.version : undefined;
    if (only !== undefined && (await ctx.store.current(state.model)) !== only)
      await ctx.store.activate(state.model, only);
    await ctx.store.saveServingPlan(state.model, plan);
    await applyPlan(ctx, state.model, plan);
    log.warn({ model: state.model, restored: plan }, 'rolled back');
  }
  return advance(ctx, state, 'reporting');
};
