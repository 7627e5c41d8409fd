import { logger } from '../../runtime/log.js';
import { checkPipelineVectors, type Pipeline } from '../../runtime/pipeline/index.js';
import { PIPELINE_SELECTION, openInstalledPipeline, pipelineBackend } from '../serving/active-pipelines.js';
import type { DeploymentState } from '../storage/deployment-records.js';
import { advance, type DeploymentContext } from './context.js';

const log = logger('agent.self-test');

/**
 * The self-test of an installed pipeline (docs/pipelines.md, "Deploying a pipeline"): opened as it will serve
 * (verified again, every bundled model loaded, the plan validated against them, transforms bound), then every
 * recorded end-to-end test vector run through all its steps and compared (strings exactly, numbers within the
 * recorded tolerance). Any failure is SELF_TEST_FAILED (or the opening's own typed error) before the switch, so
 * the serving version is untouched. The opened pipeline waits in `ctx.tested` for the activation step, which
 * serves it as the job's rollout says (replace, canary or shadow: serving/plan.ts).
 */
export async function testPipeline(ctx: DeploymentContext, state: DeploymentState): Promise<DeploymentState> {
  const pipeline = await openInstalledPipeline(
    {
      store: ctx.store,
      trustedKeys: ctx.trustedKeys,
      requireSignature: ctx.requireSignature,
      backend: ctx.config.backend,
      verdicts: ctx.verdicts,
    },
    state.model,
    state.version,
  );
  let vectors: number;
  try {
    vectors = await checkPipelineVectors(pipeline, ctx.store.versionDir(state.model, state.version));
  } catch (error) {
    await pipeline.release();
    throw error;
  }
  const backend = pipelineBackend(pipeline);
  const where = { jobId: state.jobId, pipeline: state.model, version: state.version, backend };
  if (vectors === 0) log.warn(where, 'pipeline has no test vectors: opened and planned, not run');
  else log.info({ ...where, vectors }, 'pipeline test vectors passed');
  keepTested(ctx, state.jobId, pipeline);
  await ctx.store.saveSelection(state.model, state.version, {
    variant: PIPELINE_SELECTION,
    backend,
    selectedAt: new Date().toISOString(),
  });
  return advance(ctx, state, 'activating', { variant: PIPELINE_SELECTION, backend });
}

function keepTested(ctx: DeploymentContext, jobId: string, pipeline: Pipeline): void {
  ctx.tested
    .get(jobId)
    ?.release()
    .catch(() => undefined);
  ctx.tested.set(jobId, pipeline);
}
