import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Model } from '../../../runtime/model/model.js';
import { imageToTensor } from '../../../runtime/pipeline/image.js';
import { softmax, topK } from '../../../runtime/pipeline/postprocess.js';
import { StaticRepository } from '../../../runtime/server/serving/model-repository.js';
import type { InferenceServer } from '../../../runtime/server/http/server.js';
import { suiteTmpDir } from '../../helpers/tmp.js';
import {
  inferReply,
  binaryBody,
  bytesElements,
  call,
  decodeInfer,
  json,
  startServer,
  type CallOptions,
  type OutputJson,
} from '../../helpers/http-client.js';
import { LABELS, loadFixtures, testImage, TOP_K } from '../../helpers/serving-artifacts.js';

/** Image pipelines: encoded images in (BYTES binary or base64, or an image/* body), post-processing outputs back. */
let models: Awaited<ReturnType<typeof load>>;
let server: InferenceServer;
let url: string;
let dispose: () => Promise<void>;
let jpeg: Buffer;
let png: Buffer;

const load = (dir: string) => loadFixtures(dir, ['classifier', 'classifier2', 'probe']);

beforeAll(async () => {
  const tmp = await suiteTmpDir();
  dispose = tmp.dispose;
  [models, jpeg, png] = await Promise.all([load(tmp.dir), testImage('jpeg', 1), testImage('png', 2)]);
  const repository = new StaticRepository();
  for (const model of Object.values(models)) await repository.add(model);
  ({ server, url } = await startServer({ repository }));
});
afterAll(async () => {
  await server.close();
  for (const model of Object.values(models)) await model.release();
  await dispose();
});

const PATH = '/v2/models/classifier/versions/1.0.0/infer';
const infer = (options: CallOptions, path = PATH) => call(url, path, options);

/** What the server should answer for `image`, computed in process with the runtime's own pipeline functions. */
async function expected(model: Model, image: Buffer) {
  const spec = model.manifest.pipeline.preprocess;
  if (spec === undefined) throw new Error('no preprocess');
  const logits = (await model.infer({ image: await imageToTensor(image, spec) })).logits?.data as Float32Array;
  const probabilities = softmax(logits);
  return { logits, probabilities, top: topK(probabilities, TOP_K, LABELS) };
}

function byName(outputs: readonly OutputJson[]): Record<string, OutputJson> {
  return Object.fromEntries(outputs.map((o) => [o.name, o]));
}

function expectClassified(outputs: readonly OutputJson[], want: Awaited<ReturnType<typeof expected>>): void {
  const got = byName(outputs);
  expect(Object.keys(got)).toEqual([
    'logits',
    'logits.probabilities',
    'logits.top_k_indices',
    'logits.top_k_scores',
    'logits.top_k_labels',
  ]);
  expect(got.logits?.data).toEqual(Array.from(want.logits));
  expect(got['logits.probabilities']).toMatchObject({ datatype: 'FP32', shape: [1, 10] });
  expect(got['logits.probabilities']?.data).toEqual(Array.from(want.probabilities));
  expect(got['logits.top_k_indices']).toMatchObject({ datatype: 'INT64', shape: [1, TOP_K] });
  expect(got['logits.top_k_indices']?.data).toEqual(want.top.map((c) => c.index));
  expect(got['logits.top_k_scores']?.data).toEqual(want.top.map((c) => Math.fround(c.score)));
  expect(got['logits.top_k_labels']).toMatchObject({ datatype: 'BYTES', shape: [1, TOP_K] });
  expect(got['logits.top_k_labels']?.data).toEqual(want.top.map((c) => c.label));
}

describe('image inputs', () => {
  it('classifies a JPEG sent as one raw BYTES element (binary extension) with top-k labels', async () => {
    const { body, headers } = binaryBody(
      { inputs: [{ name: 'image', shape: [1], datatype: 'BYTES', parameters: { binary_data_size: jpeg.length } }] },
      [jpeg],
    );
    const reply = await infer({ body, headers });
    expect(reply.status).toBe(200);
    expectClassified(inferReply(reply).outputs, await expected(models.classifier, jpeg));
  });

  it('classifies a PNG sent length-prefixed (the extension BYTES framing), as base64 JSON, and as an image body', async () => {
    const want = await expected(models.classifier, png);
    const framed = bytesElements([png]);
    const binary = binaryBody(
      { inputs: [{ name: 'image', shape: [1], datatype: 'BYTES', parameters: { binary_data_size: framed.length } }] },
      [framed],
    );
    expectClassified(inferReply(await infer(binary)).outputs, want);
    const base64 = { inputs: [{ name: 'image', shape: [1], datatype: 'BYTES', data: [png.toString('base64')] }] };
    expectClassified(inferReply(await infer({ body: JSON.stringify(base64) })).outputs, want);
    const everything =
      '?outputs=logits,logits.probabilities,logits.top_k_indices,logits.top_k_scores,logits.top_k_labels';
    const raw = await infer({ body: png, headers: { 'content-type': 'image/png' } }, `${PATH}${everything}`);
    expect(raw.status).toBe(200);
    expectClassified(inferReply(raw).outputs, want);
  });

  it("answers an image body with the artifact's declared answer (its post-processing outputs) by default", async () => {
    const reply = inferReply(await infer({ body: png, headers: { 'content-type': 'image/png' } }));
    expect(reply.outputs.map((o) => o.name)).toEqual([
      'logits.probabilities',
      'logits.top_k_indices',
      'logits.top_k_scores',
      'logits.top_k_labels',
    ]);
    const want = await expected(models.classifier, png);
    expect(byName(reply.outputs)['logits.top_k_labels']?.data).toEqual(want.top.map((c) => c.label));
  });

  it('returns post-processing outputs as binary on request, and only the outputs asked for', async () => {
    const { body, headers } = binaryBody(
      {
        inputs: [{ name: 'image', shape: [1], datatype: 'BYTES', parameters: { binary_data_size: jpeg.length } }],
        outputs: [{ name: 'logits.top_k_labels', parameters: { binary_data: true } }, { name: 'logits.top_k_indices' }],
      },
      [jpeg],
    );
    const { header, binary } = decodeInfer(await infer({ body, headers }));
    const want = await expected(models.classifier, jpeg);
    expect(header.outputs.map((o) => o.name)).toEqual(['logits.top_k_labels', 'logits.top_k_indices']);
    expect(binary.get('logits.top_k_labels')?.equals(bytesElements(want.top.map((c) => c.label ?? '')))).toBe(true);
    expect(header.outputs[1]?.data).toEqual(want.top.map((c) => c.index));
  });

  it('decodes a batch of two images into one [2, 3, 64, 64] call', async () => {
    const framed = bytesElements([jpeg, png]);
    const { body, headers } = binaryBody(
      {
        inputs: [{ name: 'image', shape: [2], datatype: 'BYTES', parameters: { binary_data_size: framed.length } }],
        outputs: [{ name: 'logits.top_k_labels' }],
      },
      [framed],
    );
    const { header } = decodeInfer(await infer({ body, headers }));
    const [a, b] = await Promise.all([expected(models.classifier, jpeg), expected(models.classifier, png)]);
    expect(header.outputs[0]?.shape).toEqual([2, TOP_K]);
    expect(header.outputs[0]?.data).toEqual([...a.top, ...b.top].map((c) => c.label));
  });

  it('lists the post-processing outputs in model metadata', async () => {
    const meta = json(await call(url, '/v2/models/classifier/versions/1.0.0'));
    expect(meta.outputs).toEqual([
      { name: 'logits', datatype: 'FP32', shape: [-1, 10] },
      { name: 'logits.probabilities', datatype: 'FP32', shape: [-1, 10] },
      { name: 'logits.top_k_indices', datatype: 'INT64', shape: [-1, TOP_K] },
      { name: 'logits.top_k_scores', datatype: 'FP32', shape: [-1, TOP_K] },
      { name: 'logits.top_k_labels', datatype: 'BYTES', shape: [-1, TOP_K] },
    ]);
  });

  it('serves each version of a model at its own path', async () => {
    const body = { body: jpeg, headers: { 'content-type': 'image/jpeg' } };
    for (const version of ['1.0.0', '2.0.0']) {
      const reply = inferReply(await infer(body, `/v2/models/classifier/versions/${version}/infer`));
      expect(reply).toMatchObject({ model_name: 'classifier', model_version: version });
    }
    const any = inferReply(await infer(body, '/v2/models/classifier/infer'));
    expect(['1.0.0', '2.0.0']).toContain(any.model_version);
    expect(json(await call(url, '/v2/models/classifier')).versions).toEqual(['1.0.0', '2.0.0']);
  });

  it('answers 400 naming the input for a corrupt image, in every encoding, and keeps serving', async () => {
    const corrupt = Buffer.concat([jpeg.subarray(0, 200), Buffer.alloc(100, 7)]);
    const cases: CallOptions[] = [
      { body: corrupt, headers: { 'content-type': 'image/jpeg' } },
      binaryBody(
        {
          inputs: [{ name: 'image', shape: [1], datatype: 'BYTES', parameters: { binary_data_size: corrupt.length } }],
        },
        [corrupt],
      ),
      {
        body: JSON.stringify({
          inputs: [{ name: 'image', shape: [1], datatype: 'BYTES', data: ['bm90IGFuIGltYWdl'] }],
        }),
      },
    ];
    for (const options of cases) {
      const reply = await infer(options);
      expect(reply.status).toBe(400);
      const body = json(reply);
      expect(body.code).toBe('INPUT_INVALID');
      expect(body.error).toContain('input "image"');
    }
    expect((await infer({ body: png, headers: { 'content-type': 'image/png' } })).status).toBe(200);
  });

  it('refuses a decompression bomb (a small PNG declaring 20000×20000 pixels) from its header, with a 400', async () => {
    const bomb = withPngSize(png, 20_000, 20_000);
    expect(bomb.length).toBe(png.length); // a few hundred bytes that would decode to 1.2 GB of RGB
    const reply = await infer({ body: bomb, headers: { 'content-type': 'image/png' } });
    expect(reply.status).toBe(400);
    expect(json(reply).error).toMatch(/pixel limit/);
    expect((await infer({ body: png, headers: { 'content-type': 'image/png' } })).status).toBe(200);
  });

  it('answers 415 to an image body for a model without an image pipeline', async () => {
    const reply = await infer({ body: png, headers: { 'content-type': 'image/png' } }, '/v2/models/probe/infer');
    expect(reply.status).toBe(415);
    expect(json(reply)).toMatchObject({ code: 'UNSUPPORTED_MEDIA_TYPE' });
  });
});

/** `png` with its IHDR width and height replaced (and the chunk's CRC recomputed), pixel data untouched. */
function withPngSize(png: Buffer, width: number, height: number): Buffer {
  const out = Buffer.from(png);
  out.writeUInt32BE(width, 16);
  out.writeUInt32BE(height, 20);
  out.writeUInt32BE(crc32(out.subarray(12, 29)), 29); // over the chunk type and its 13 data bytes
  return out;
}

/** CRC-32 as PNG defines it (ISO 3309, polynomial 0xedb88320). */
function crc32(bytes: Uint8Array): number {
  let crc = 0xffffffff;
  for (const byte of bytes) {
    crc ^= byte;
    for (let k = 0; k < 8; k++) crc = crc & 1 ? (crc >>> 1) ^ 0xedb88320 : crc >>> 1;
  }
  return (crc ^ 0xffffffff) >>> 0;
}
