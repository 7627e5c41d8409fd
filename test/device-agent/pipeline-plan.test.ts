import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildPipeline } from '../../compiler/index.js';
import { saveModel } from '../../compiler/onnx/index.js';
import { ActiveModels } from '../../device-agent/serving/active-models.js';
import { applyPlan, nextPlan, type PlanContext } from '../../device-agent/serving/plan.js';
import { ModelStore, type ServingPlan } from '../../device-agent/storage/model-store.js';
import { buildMlp } from '../../models/samples.js';
import { isOutpostError } from '../../runtime/errors.js';
import type { Pipeline } from '../../runtime/pipeline/index.js';
import { suiteTmpDir } from '../helpers/tmp.js';

/*
 * A pipeline's serving plan on the agent (device-agent/serving/plan.ts, active-pipelines.ts), without a broker: a
 * one-step pipeline around the sample MLP, installed in three versions in a real ModelStore, opened for real. A
 * canary plan serves two production versions with their weights, a shadow plan one more that only mirrors, and a
 * rollback (applyPlan of the plan before) releases what it no longer names; a plan whose opening fails leaves what
 * served before and releases what it had opened.
 */
const BUILD_TIMEOUT_MS = 60_000; // ms: three builds of a one-model pipeline

let dir: string;
let dispose: () => Promise<void>;
let store: ModelStore;
let ctx: PlanContext;

const feeds = { x: { dims: [1, 16], data: new Float32Array(16).fill(0.5) } };

/** How a run of `pipeline` ends: 'ok', or the typed error's code (MODEL_RELEASED once released). */
async function runs(pipeline: Pipeline | undefined): Promise<string> {
  if (pipeline === undefined) return 'absent';
  try {
    await pipeline.run(feeds);
    return 'ok';
  } catch (error) {
    return isOutpostError(error) ? error.code : 'untyped';
  }
}

const served = (models: ActiveModels) => {
  const service = models.pipelines.get('tiny');
  return {
    production: service?.versions().map((p) => p.version),
    weights: service?.weights(),
    shadow: service?.shadowPipeline()?.version,
  };
};

beforeAll(async () => {
  ({ dir, dispose } = await suiteTmpDir());
  await saveModel(buildMlp().proto, join(dir, 'mlp.onnx'));
  store = new ModelStore(join(dir, 'store'));
  for (const version of ['1.0.0', '1.1.0', '1.2.0']) {
    const source = join(dir, `tiny-${version}.json`);
    await writeFile(
      source,
      JSON.stringify({
        name: 'tiny',
        version,
        inputs: [{ name: 'x', dtype: 'float32', shape: ['batch', 16] }],
        models: { mlp: { file: 'mlp.onnx' } },
        steps: [{ id: 'mlp', model: 'mlp', inputs: { x: 'inputs.x' } }],
        outputs: { logits: 'mlp.logits' },
      }),
    );
    await mkdir(store.modelDir('tiny'), { recursive: true });
    await buildPipeline({ source, target: 'host', output: store.versionDir('tiny', version) });
  }
}, BUILD_TIMEOUT_MS);

afterAll(async () => {
  await dispose();
});

describe("a pipeline's serving plan on the agent", () => {
  it('canary and shadow plans serve as for models; the rollback releases what it no longer names', async () => {
    const models = new ActiveModels();
    ctx = { store, models, trustedKeys: [], requireSignature: false };
    const base: ServingPlan = { production: [{ version: '1.0.0', weight: 1 }] };
    await applyPlan(ctx, 'tiny', base);
    const v1 = models.pipelines.loaded('tiny', '1.0.0');

    const canary = nextPlan({ mode: 'canary', percent: 25 }, base, '1.1.0');
    await applyPlan(ctx, 'tiny', canary);
    expect(served(models)).toEqual({ production: ['1.0.0', '1.1.0'], weights: [75, 25], shadow: undefined });
    expect(models.pipelines.loaded('tiny', '1.0.0')).toBe(v1); // reused, not opened again
    const v2 = models.pipelines.loaded('tiny', '1.1.0');
    expect(models.pipelines.get('tiny')?.select('1.1.0')).toBe(v2); // a request naming the canary gets it

    const shadow = nextPlan({ mode: 'shadow', percent: 100 }, canary, '1.2.0');
    await applyPlan(ctx, 'tiny', shadow);
    expect(served(models)).toEqual({ production: ['1.0.0', '1.1.0'], weights: [75, 25], shadow: '1.2.0' });
    const v3 = models.pipelines.loaded('tiny', '1.2.0');
    expect(models.pipelines.list()).toHaveLength(3);

    // The rollback of both: the plan before them again; the canary and the shadow are released, 1.0.0 serves.
    await applyPlan(ctx, 'tiny', base);
    expect(served(models)).toEqual({ production: ['1.0.0'], weights: [1], shadow: undefined });
    expect([await runs(v1), await runs(v2), await runs(v3)]).toEqual(['ok', 'MODEL_RELEASED', 'MODEL_RELEASED']);
    await models.close();
    expect(await runs(v1)).toBe('MODEL_RELEASED');
  });

  it('a restart serves a canary + shadow plan from disk (as serveInstalled does)', async () => {
    const plan: ServingPlan = {
      production: [
        { version: '1.0.0', weight: 50 },
        { version: '1.1.0', weight: 50 },
      ],
      shadow: { version: '1.2.0', percent: 10 },
    };
    await store.saveServingPlan('tiny', plan);
    const models = new ActiveModels();
    const saved = await store.servingPlan('tiny');
    expect(saved).toEqual(plan);
    await applyPlan({ store, models, trustedKeys: [], requireSignature: false }, 'tiny', saved as ServingPlan);
    expect(served(models)).toEqual({ production: ['1.0.0', '1.1.0'], weights: [50, 50], shadow: '1.2.0' });
    const service = models.pipelines.get('tiny');
    const run = await service?.infer(feeds, service.select('1.1.0') as Pipeline, true);
    expect(run?.outputs.logits?.dims).toEqual([1, 10]);
    await models.close();
  });

  it('a plan that fails to open keeps what served and releases what it opened; mixing a model is refused', async () => {
    const models = new ActiveModels();
    const context = { store, models, trustedKeys: [], requireSignature: false };
    await applyPlan(context, 'tiny', { production: [{ version: '1.0.0', weight: 1 }] });
    const v1 = models.pipelines.loaded('tiny', '1.0.0');
    // 1.1.0 opens, 9.9.9 is not installed: the plan fails, 1.1.0 (opened for it) is released, 1.0.0 still serves.
    const failing: ServingPlan = {
      production: [
        { version: '1.0.0', weight: 90 },
        { version: '1.1.0', weight: 10 },
      ],
      shadow: { version: '9.9.9', percent: 5 },
    };
    await expect(applyPlan(context, 'tiny', failing)).rejects.toThrow();
    expect(served(models)).toEqual({ production: ['1.0.0'], weights: [1], shadow: undefined });
    expect(await runs(v1)).toBe('ok');
    expect(models.pipelines.list()).toEqual([v1]);

    // A model installed under the same name beside the pipeline versions cannot share its traffic.
    await mkdir(store.versionDir('tiny', '2.0.0'), { recursive: true });
    await writeFile(join(store.versionDir('tiny', '2.0.0'), 'manifest.json'), JSON.stringify({ name: 'tiny' }));
    const mixed = applyPlan(context, 'tiny', {
      production: [
        { version: '1.0.0', weight: 50 },
        { version: '2.0.0', weight: 50 },
      ],
    });
    await expect(mixed).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    expect(await runs(v1)).toBe('ok');
    await models.close();
  });
});
