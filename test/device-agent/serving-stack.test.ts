import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { saveModel } from '../../compiler/onnx/index.js';
import { parseAgentConfig } from '../../device-agent/config.js';
import { createServingStack, type ServingStack } from '../../device-agent/serving/stack.js';
import { buildMlp } from '../../models/samples.js';
import { loadModel } from '../../runtime/model/load.js';
import type { Model } from '../../runtime/model/model.js';
import { seededRandom } from '../../runtime/tensor/tensor.js';
import { OutpostError } from '../../runtime/errors.js';
import type { GuardrailAlarm } from '../../device-agent/deployment/guardrails.js';
import { suiteTmpDir } from '../helpers/tmp.js';

const CALLS = 24; // concurrent calls: enough to fill batches of 8

let dir: string;
let dispose: () => Promise<void>;

beforeAll(async () => {
  ({ dir, dispose } = await suiteTmpDir());
});

afterAll(async () => {
  await dispose();
});

/** The sample MLP (x [batch, 16]) served under `name` by a stack built from `config`, and CALLS concurrent calls. */
async function serveAndCall(
  config: Record<string, unknown>,
  name = 'mlp',
): Promise<{ stack: ServingStack; model: Model }> {
  const stack = await createServingStack(parseAgentConfig({ thing: 'dev', dataDir: join(dir, name), ...config }));
  // A plain .onnx is served under its file name.
  const modelPath = join(dir, `${name}.onnx`);
  await saveModel(buildMlp().proto, modelPath);
  const model = await loadModel(modelPath);
  expect(model.name).toBe(name);
  await stack.models.swap(model);
  const service = stack.models.service(name);
  if (service === undefined) throw new Error('not served');
  const random = seededRandom(3);
  await Promise.all(
    Array.from({ length: CALLS }, () =>
      service.infer({ x: { dims: [1, 16], data: Float32Array.from({ length: 16 }, random) } }),
    ),
  );
  return { stack, model };
}

/** `outpost_batch_size_count` for the model: how many batches the batcher ran (absent: none). */
async function batches(stack: ServingStack, name: string): Promise<number> {
  const line = (await stack.metrics.text())
    .split('\n')
    .find((l) => l.startsWith('outpost_batch_size_count') && l.includes(`model="${name}"`));
  return line === undefined ? 0 : Number(line.split(' ').at(-1));
}

async function requests(stack: ServingStack, name: string): Promise<number> {
  const line = (await stack.metrics.text())
    .split('\n')
    .find((l) => l.startsWith('outpost_inference_requests_total') && l.includes(`model="${name}"`));
  return line === undefined ? 0 : Number(line.split(' ').at(-1));
}

describe("the agent's serving stack, from its config", () => {
  it('schedules directly by default and counts every call in its metrics', async () => {
    const { stack } = await serveAndCall({}, 'plain');
    expect(await requests(stack, 'plain')).toBe(CALLS);
    expect(await batches(stack, 'plain')).toBe(0);
    expect(stack.guardrails).toBeUndefined();
    expect(stack.capture).toBeUndefined();
    await stack.models.close();
  });

  it('batches calls when serving.batching is configured', async () => {
    const { stack } = await serveAndCall(
      { serving: { batching: { maxBatchSize: 8, maxQueueDelayMs: 20 } } },
      'batched',
    );
    expect(await requests(stack, 'batched')).toBe(CALLS);
    const runs = await batches(stack, 'batched');
    expect(runs).toBeGreaterThan(0);
    expect(runs).toBeLessThan(CALLS); // several calls shared a run
    await stack.models.close();
  });

  it("applies an `outpost tune` file: the model's tuned batching wins over the config's", async () => {
    const tuning = join(dir, 'tune.json');
    const measured = { p50_ms: 1, p90_ms: 1, p99_ms: 1, mean_ms: 1, throughput_per_s: 1, calls_per_s: 1, load_ms: 1 };
    await writeFile(
      tuning,
      JSON.stringify([
        {
          model: 'tuned',
          version: '0',
          variant: 'fp32',
          backend: 'native',
          threads: 1,
          batch: null,
          measured,
          criterion: 'test',
        },
      ]),
    );
    const { stack } = await serveAndCall(
      { tuning, serving: { batching: { maxBatchSize: 8, maxQueueDelayMs: 20 } } },
      'tuned',
    );
    expect(await batches(stack, 'tuned')).toBe(0); // tune chose no batching for this model
    expect(stack.tuning.get('tuned')?.threads).toBe(1);
    await stack.models.close();
  });

  it('captures sampled calls when capture.samplePercent > 0', async () => {
    const { stack } = await serveAndCall({ capture: { samplePercent: 100, upload: false } }, 'captured');
    const capture = stack.capture;
    expect(capture).toBeDefined();
    await capture?.flush();
    expect(capture?.stats()).toMatchObject({ sampled: CALLS, written: CALLS });
    await stack.models.close();
    await capture?.close();
  });

  it('refuses a malformed tuning file with a clear error', async () => {
    const bad = join(dir, 'bad-tune.json');
    await writeFile(bad, JSON.stringify({ model: 'x' }));
    await expect(
      createServingStack(parseAgentConfig({ thing: 'dev', dataDir: join(dir, 'bad'), tuning: bad })),
    ).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringContaining('tuning file') as string });
  });

  it("a pipeline's calls count against the guardrails (its bake): caller faults ignored, failures alarm", async () => {
    const stack = await createServingStack(
      parseAgentConfig({
        thing: 'dev',
        dataDir: join(dir, 'pipeline-guardrails'),
        guardrails: { windowSeconds: 60, minRequests: 2, maxErrorRate: 0.4 },
      }),
    );
    const alarms: GuardrailAlarm[] = [];
    stack.guardrails?.watch('ocr', '1.0.0', (alarm) => alarms.push(alarm));
    // What the server's pipeline handler reports per request (runtime/server/http/pipeline.ts).
    const pipelines = stack.metrics.pipelines;
    pipelines.failed('ocr', '1.0.0', 'INPUT_INVALID', new OutpostError('INPUT_INVALID', 'not an image'));
    pipelines.succeeded('ocr', '1.0.0', 12, { det: 5, rec: 7 });
    expect(alarms).toEqual([]);
    pipelines.failed('ocr', '1.0.0', 'INFERENCE_FAILED', new OutpostError('INFERENCE_FAILED', 'step "rec": …'));
    pipelines.failed('ocr', '1.0.0', 'INFERENCE_FAILED', new OutpostError('INFERENCE_FAILED', 'step "rec": …'));
    expect(alarms.map((a) => a.code)).toEqual(['GUARDRAIL_ERROR_RATE']);
    await stack.models.close();
  });
});
