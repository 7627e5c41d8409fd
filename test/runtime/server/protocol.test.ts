import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadModel } from '../../../runtime/model/load.js';
import type { Model } from '../../../runtime/model/model.js';
import { StaticRepository } from '../../../runtime/server/serving/model-repository.js';
import type { InferenceServer } from '../../../runtime/server/http/server.js';
import { seededRandom } from '../../../runtime/tensor/tensor.js';
import { REAL_MODELS } from '../../helpers/models.js';
import { suiteTmpDir } from '../../helpers/tmp.js';
import {
  inferReply,
  binaryBody,
  bytesElements,
  bytesOf,
  call,
  decodeInfer,
  json,
  startServer,
  type CallOptions,
} from '../../helpers/http-client.js';
import { loadFixtures } from '../../helpers/serving-artifacts.js';

/** The Open Inference Protocol over JSON and over the binary tensor data extension, against in-process inference. */
let wake: Model;
let models: Awaited<ReturnType<typeof load>>;
let server: InferenceServer;
let url: string;
let dispose: () => Promise<void>;
const WAKE_INPUT = 'onnx::Flatten_0';
const PROBE_DIMS = [1, 3, 224, 224];

const load = (dir: string) => loadFixtures(dir, ['probe', 'echo']);

beforeAll(async () => {
  const tmp = await suiteTmpDir();
  dispose = tmp.dispose;
  [wake, models] = await Promise.all([loadModel(REAL_MODELS.wakeWord), load(tmp.dir)]);
  const repository = new StaticRepository();
  for (const model of [wake, models.probe, models.echo]) await repository.add(model);
  ({ server, url } = await startServer({ repository }));
});
afterAll(async () => {
  await server.close();
  for (const model of [wake, models.probe, models.echo]) await model.release();
  await dispose();
});

const infer = (name: string, options: CallOptions) => call(url, `/v2/models/${name}/infer`, options);
const inferJson = (name: string, body: unknown) => infer(name, { body: JSON.stringify(body) });

/** A little-endian FP32 reply part as numbers (parts need not be aligned in the reply). */
function floats(bytes: Buffer): Float32Array {
  return new Float32Array(Uint8Array.from(bytes).buffer);
}

function probeInput(seed = 5): Float32Array {
  const random = seededRandom(seed);
  return Float32Array.from({ length: 3 * 224 * 224 }, () => random() * 2 - 1);
}

describe('server and model metadata', () => {
  it('answers health, advertises the binary extension and describes each model', async () => {
    expect(json(await call(url, '/v2/health/live'))).toEqual({ live: true });
    expect((await call(url, '/v2/health/ready')).status).toBe(200);
    expect(json(await call(url, '/v2'))).toMatchObject({ name: 'outpost', extensions: ['binary_tensor_data'] });
    expect(json(await call(url, `/v2/models/${wake.name}`))).toMatchObject({
      name: wake.name,
      platform: 'onnxruntime',
      inputs: [{ name: WAKE_INPUT, datatype: 'FP32', shape: [1, 25, 96] }],
    });
    expect(json(await call(url, '/v2/models/echo'))).toMatchObject({
      inputs: [{ name: 'text', datatype: 'BYTES', shape: [-1] }],
    });
    expect((await call(url, `/v2/models/${wake.name}/ready`)).status).toBe(200);
  });
});

describe('JSON tensors', () => {
  it('infers and matches the in-process answer', async () => {
    const data = Array.from({ length: 2400 }, (_, i) => Math.sin(i / 10));
    const reply = await inferJson(wake.name, {
      id: 'r1',
      inputs: [{ name: WAKE_INPUT, shape: [1, 25, 96], datatype: 'FP32', data }],
    });
    expect(reply.status).toBe(200);
    expect(reply.headers['content-type']).toBe('application/json');
    const body = inferReply(reply);
    const local = await wake.infer({ [WAKE_INPUT]: { data: Float32Array.from(data), dims: [1, 25, 96] } });
    expect(body.id).toBe('r1');
    expect(body.outputs[0]?.shape).toEqual([1, 1]);
    expect(body.outputs[0]?.data?.[0]).toBe((local['39']?.data as Float32Array)[0]);
  });
});

describe('binary tensor data extension', () => {
  it('takes a 1×3×224×224 FP32 input as binary and returns every output as binary, bit-identical', async () => {
    const x = probeInput();
    const { body, headers } = binaryBody(
      {
        inputs: [{ name: 'x', shape: PROBE_DIMS, datatype: 'FP32', parameters: { binary_data_size: x.byteLength } }],
        parameters: { binary_data_output: true },
      },
      [bytesOf(x)],
    );
    const reply = await infer('probe', { body, headers });
    expect(reply.status).toBe(200);
    expect(reply.headers['content-type']).toBe('application/octet-stream');
    const { header, binary } = decodeInfer(reply);
    const local = await models.probe.infer({ x: { data: x, dims: PROBE_DIMS } });
    expect(header.outputs.map((o) => [o.name, o.datatype, o.shape])).toEqual([
      ['scaled', 'FP32', PROBE_DIMS],
      ['mean', 'FP32', [1, 3]],
      ['top', 'INT64', [1]],
    ]);
    for (const output of header.outputs) {
      expect(output.data).toBeUndefined();
      expect(binary.get(output.name)?.equals(bytesOf(local[output.name]?.data as ArrayBufferView))).toBe(true);
    }
  });

  it('gives the same numbers as JSON for the same input', async () => {
    const x = probeInput(9);
    const asJson = inferReply(
      await inferJson('probe', {
        inputs: [{ name: 'x', shape: PROBE_DIMS, datatype: 'FP32', data: Array.from(x) }],
        outputs: [{ name: 'mean' }, { name: 'top' }],
      }),
    );
    const { body, headers } = binaryBody(
      {
        inputs: [{ name: 'x', shape: PROBE_DIMS, datatype: 'FP32', parameters: { binary_data_size: x.byteLength } }],
        outputs: [
          { name: 'mean', parameters: { binary_data: true } },
          { name: 'top', parameters: { binary_data: true } },
        ],
      },
      [bytesOf(x)],
    );
    const { binary } = decodeInfer(await infer('probe', { body, headers }));
    const mean = binary.get('mean') ?? Buffer.alloc(0);
    const top = binary.get('top') ?? Buffer.alloc(0);
    expect(asJson.outputs.map((o) => o.name)).toEqual(['mean', 'top']);
    expect(asJson.outputs[0]?.data).toEqual(Array.from(floats(mean)));
    expect(asJson.outputs[1]?.data).toEqual([Number(top.readBigInt64LE(0))]);
  });

  it('mixes JSON and binary outputs as asked, and binary inputs with JSON outputs', async () => {
    const x = probeInput(11);
    const local = await models.probe.infer({ x: { data: x, dims: PROBE_DIMS } });
    const { body, headers } = binaryBody(
      {
        id: 'mixed',
        inputs: [{ name: 'x', shape: PROBE_DIMS, datatype: 'FP32', parameters: { binary_data_size: x.byteLength } }],
        parameters: { binary_data_output: true },
        outputs: [{ name: 'top', parameters: { binary_data: false } }, { name: 'mean' }],
      },
      [bytesOf(x)],
    );
    const { header, binary } = decodeInfer(await infer('probe', { body, headers }));
    expect(header.id).toBe('mixed');
    expect(header.outputs.map((o) => o.name)).toEqual(['top', 'mean']);
    expect(header.outputs[0]?.data).toEqual([Number((local.top?.data as BigInt64Array)[0])]);
    expect(header.outputs[1]?.parameters?.binary_data_size).toBe(12);
    expect(binary.get('mean')?.equals(bytesOf(local.mean?.data as Float32Array))).toBe(true);

    // Binary in, JSON out: no binary section, a plain JSON response.
    const jsonOut = binaryBody(
      {
        inputs: [{ name: 'x', shape: PROBE_DIMS, datatype: 'FP32', parameters: { binary_data_size: x.byteLength } }],
        outputs: [{ name: 'mean' }],
      },
      [bytesOf(x)],
    );
    const reply = await infer('probe', jsonOut);
    expect(reply.headers['content-type']).toBe('application/json');
    expect(reply.headers['inference-header-content-length']).toBeUndefined();
    expect(inferReply(reply).outputs[0]?.data).toEqual(Array.from(local.mean?.data as Float32Array));
  });

  it('carries BYTES tensors as length-prefixed elements both ways, and as strings in JSON', async () => {
    const words = ['héllo', '', '日本語', 'x'.repeat(300)];
    const elements = bytesElements(words);
    const { body, headers } = binaryBody(
      {
        inputs: [{ name: 'text', shape: [4], datatype: 'BYTES', parameters: { binary_data_size: elements.length } }],
        outputs: [{ name: 'same', parameters: { binary_data: true } }],
      },
      [elements],
    );
    const { header, binary } = decodeInfer(await infer('echo', { body, headers }));
    expect(header.outputs[0]).toMatchObject({ name: 'same', datatype: 'BYTES', shape: [4] });
    expect(binary.get('same')?.equals(elements)).toBe(true);

    const viaJson = inferReply(
      await inferJson('echo', { inputs: [{ name: 'text', shape: [4], datatype: 'BYTES', data: words }] }),
    );
    expect(viaJson.outputs[0]?.data).toEqual(words);
  });
});
