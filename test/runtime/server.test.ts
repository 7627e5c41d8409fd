import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadModel } from '../../runtime/model/load.js';
import type { Model } from '../../runtime/model/model.js';
import { StaticRepository } from '../../runtime/server/serving/model-repository.js';
import { InferenceServer } from '../../runtime/server/http/server.js';
import { REAL_MODELS } from '../helpers/models.js';

let model: Model;
let server: InferenceServer;
let base: string;
const INPUT = 'onnx::Flatten_0';

beforeAll(async () => {
  model = await loadModel(REAL_MODELS.wakeWord);
  server = new InferenceServer({
    repository: await new StaticRepository().add(model),
    port: 0,
    maxBodyBytes: 64 * 1024,
  });
  base = (await server.listen()).url;
});
afterAll(async () => {
  await server.close();
  await model.release();
});

const infer = (body: unknown, name = model.name) =>
  fetch(`${base}/v2/models/${name}/infer`, {
    method: 'POST',
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });

describe('Open Inference Protocol server (JSON)', () => {
  it('answers health, server and model metadata', async () => {
    expect(await (await fetch(`${base}/v2/health/live`)).json()).toEqual({ live: true });
    expect((await fetch(`${base}/v2/health/ready`)).status).toBe(200);
    const meta = (await (await fetch(`${base}/v2/models/${model.name}`)).json()) as Record<string, unknown>;
    expect(meta).toMatchObject({
      name: model.name,
      platform: 'onnxruntime',
      inputs: [{ name: INPUT, datatype: 'FP32', shape: [1, 25, 96] }],
    });
    expect((await fetch(`${base}/v2/models/${model.name}/ready`)).status).toBe(200);
  });

  it('infers with JSON tensors and matches the in-process answer', async () => {
    const data = Array.from({ length: 2400 }, (_, i) => Math.sin(i / 10));
    const response = await infer({ id: 'r1', inputs: [{ name: INPUT, shape: [1, 25, 96], datatype: 'FP32', data }] });
    expect(response.status).toBe(200);
    const body = (await response.json()) as {
      id: string;
      outputs: { name: string; shape: number[]; data: number[] }[];
    };
    const local = await model.infer({ [INPUT]: { data: Float32Array.from(data), dims: [1, 25, 96] } });
    expect(body.id).toBe('r1');
    expect(body.outputs[0]?.shape).toEqual([1, 1]);
    expect(body.outputs[0]?.data[0]).toBeCloseTo((local['39']?.data as Float32Array)[0] ?? NaN, 6);
  });

  it.each([
    ['malformed JSON', '{"inputs": [', 400, 'INPUT_INVALID'],
    ['no inputs', {}, 400, 'INPUT_INVALID'],
    [
      'a wrong shape',
      { inputs: [{ name: INPUT, shape: [1, 96, 25], datatype: 'FP32', data: new Array(2400).fill(0) }] },
      400,
      'INPUT_SHAPE_MISMATCH',
    ],
    [
      'a wrong datatype',
      { inputs: [{ name: INPUT, shape: [1, 25, 96], datatype: 'INT64', data: new Array(2400).fill(0) }] },
      400,
      'INPUT_DTYPE_MISMATCH',
    ],
    [
      'an unknown input',
      { inputs: [{ name: 'nope', shape: [1], datatype: 'FP32', data: [0] }] },
      400,
      'INPUT_NAME_UNKNOWN',
    ],
  ])('answers %s with $2 naming the problem, and keeps serving', async (_, body, status, code) => {
    const response = await infer(body);
    expect(response.status).toBe(status);
    expect(((await response.json()) as { code: string }).code).toBe(code);
    expect((await fetch(`${base}/v2/health/live`)).status).toBe(200);
  });

  it('answers 404 for an unknown model and 413 for a body over the limit', async () => {
    expect((await infer({ inputs: [] }, 'ghost')).status).toBe(404);
    const big = await infer({
      inputs: [{ name: INPUT, shape: [1, 25, 96], datatype: 'FP32', data: new Array(30000).fill(0.123456) }],
    });
    expect(big.status).toBe(413);
  });
});
