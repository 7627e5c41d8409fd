import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Model } from '../../../runtime/model/model.js';
import { imageToTensor } from '../../../runtime/pipeline/image.js';
import { StaticRepository } from '../../../runtime/server/serving/model-repository.js';
import type { InferenceServer } from '../../../runtime/server/http/server.js';
import { suiteTmpDir } from '../../helpers/tmp.js';
import { call, decodeInfer, inferReply, json, startServer, type CallOptions } from '../../helpers/http-client.js';
import { MOSAIC_OUTPUTS, loadFixtures, testImage } from '../../helpers/serving-artifacts.js';

/**
 * Image bodies choose their outputs and their encoding in the query string, and every answer is held to the
 * server's response limit (README.md, "Images" and "Limits"): a model with 12 large outputs (`mosaic`, ~10 MB of
 * JSON per image by default) gets a 400 naming what to ask for, not gigabytes of server memory.
 */
const LIMIT = 4 * 1024 * 1024; // bytes: above the 12 outputs in binary (2.4 MB), below them in JSON (~10 MB)
const PATH = '/v2/models/mosaic/infer';
const TILE_ELEMENTS = 3 * 128 * 128;

let model: Model;
let server: InferenceServer;
let url: string;
let dispose: () => Promise<void>;
let png: Buffer;
let want: Record<string, Float32Array>;

beforeAll(async () => {
  const tmp = await suiteTmpDir();
  dispose = tmp.dispose;
  [{ mosaic: model }, png] = await Promise.all([loadFixtures(tmp.dir, ['mosaic']), testImage('png', 3)]);
  const repository = new StaticRepository();
  await repository.add(model);
  ({ server, url } = await startServer({ repository, maxResponseBytes: LIMIT }));
  const spec = model.manifest.pipeline.preprocess;
  if (spec === undefined) throw new Error('mosaic declares image pre-processing');
  const outputs = await model.infer({ image: await imageToTensor(png, spec) });
  want = Object.fromEntries(Object.entries(outputs).map(([name, t]) => [name, t.data as Float32Array]));
});
afterAll(async () => {
  await server.close();
  await model.release();
  await dispose();
});

const image = (query = '') => call(url, `${PATH}${query}`, { body: png, headers: { 'content-type': 'image/png' } });

describe('image bodies: outputs, binary data and the response limit', () => {
  it('refuses the default answer (all 12 outputs as JSON) with 400 RESPONSE_TOO_LARGE naming the way out', async () => {
    const reply = await image();
    expect(reply.status).toBe(400);
    const body = json(reply);
    expect(body.code).toBe('RESPONSE_TOO_LARGE');
    expect(body.error).toContain(`${LIMIT}-byte response limit`);
    expect(body.error).toMatch(/\?outputs=a,b/);
    expect(body.error).toMatch(/\?binary_data_output=true/);
    // The server is not hurt: the next answer comes.
    expect((await image('?outputs=tile0')).status).toBe(200);
  });

  it('honours ?outputs=…: only those, in that order, as JSON, equal to the in-process answer', async () => {
    const reply = inferReply(await image('?outputs=tile7,tile2'));
    expect(reply.outputs.map((o) => [o.name, o.datatype, o.shape])).toEqual([
      ['tile7', 'FP32', [1, 3, 128, 128]],
      ['tile2', 'FP32', [1, 3, 128, 128]],
    ]);
    expect(reply.outputs[0]?.data).toEqual(Array.from(want.tile7 ?? []));
    expect(reply.outputs[1]?.data).toEqual(Array.from(want.tile2 ?? []));
  });

  it('honours ?binary_data_output=true: every output as binary data, bit-identical, under the limit', async () => {
    const reply = await image('?binary_data_output=true');
    expect(reply.status).toBe(200);
    const { header, binary } = decodeInfer(reply);
    expect(header.outputs).toHaveLength(MOSAIC_OUTPUTS);
    for (let i = 0; i < MOSAIC_OUTPUTS; i++) {
      const name = `tile${i}`;
      const bytes = binary.get(name);
      expect(bytes?.length).toBe(TILE_ELEMENTS * 4);
      const data = want[name] ?? new Float32Array();
      expect(bytes?.equals(Buffer.from(data.buffer, data.byteOffset, data.byteLength))).toBe(true);
    }
  });

  it('holds tensor requests to the same limit, and refuses bad query values with a 400', async () => {
    const spec = model.manifest.pipeline.preprocess;
    if (spec === undefined) throw new Error('mosaic declares image pre-processing');
    const tensor = await imageToTensor(png, spec);
    const request: CallOptions = {
      body: JSON.stringify({
        inputs: [
          { name: 'image', shape: [...tensor.dims], datatype: 'FP32', data: Array.from(tensor.data as Float32Array) },
        ],
      }),
    };
    const all = await call(url, PATH, request);
    expect([all.status, json(all).code]).toEqual([400, 'RESPONSE_TOO_LARGE']);
    for (const query of ['?outputs=nope', '?outputs=tile1,tile1', '?binary_data_output=yes']) {
      const reply = await image(query);
      expect([reply.status, json(reply).code], query).toEqual([400, 'INPUT_INVALID']);
    }
  });
});
