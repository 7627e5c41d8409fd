import { Agent } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Model } from '../../../runtime/model/model.js';
import { StaticRepository } from '../../../runtime/server/serving/model-repository.js';
import type { InferenceServer } from '../../../runtime/server/http/server.js';
import { suiteTmpDir } from '../../helpers/tmp.js';
import {
  binaryBody,
  bytesOf,
  call,
  head,
  json,
  rawJson,
  rawSocket,
  rawStatus,
  readUntilClose,
  startServer,
  until,
  type CallOptions,
} from '../../helpers/http-client.js';
import { loadFixtures } from '../../helpers/serving-artifacts.js';

/**
 * Bad input and rude clients: each case gets the right answer (status, code, a message naming the problem) and the
 * server keeps serving: a good request succeeds afterwards, on a keep-alive connection where one survives. Slow
 * clients are in timeouts.test.ts; overload and clients leaving mid-inference in overload.test.ts.
 */
const LIMIT = 64 * 1024; // bytes: the body limit of the server under test
let models: Awaited<ReturnType<typeof load>>;
let server: InferenceServer;
let url: string;
let dispose: () => Promise<void>;
const agent = new Agent({ keepAlive: true, maxSockets: 1 });

const load = (dir: string) => loadFixtures(dir, ['mlp', 'classifier', 'classifier2']);

beforeAll(async () => {
  const tmp = await suiteTmpDir();
  dispose = tmp.dispose;
  models = await load(tmp.dir);
  const repository = new StaticRepository();
  for (const model of Object.values(models)) await repository.add(model);
  ({ server, url } = await startServer({ repository, maxBodyBytes: LIMIT }));
});
afterAll(async () => {
  agent.destroy();
  await server.close();
  for (const model of Object.values<Model>(models)) await model.release();
  await dispose();
});

const X = Array.from({ length: 16 }, (_, i) => i / 16);
const good = { inputs: [{ name: 'x', shape: [1, 16], datatype: 'FP32', data: X }] };

/** A good request on the shared keep-alive connection: the server is still serving, and as it should. */
async function expectServing(target = url): Promise<void> {
  const reply = await call(target, '/v2/models/mlp/infer', { body: JSON.stringify(good), agent });
  expect(reply.status).toBe(200);
  expect(json(reply)).toMatchObject({ model_name: 'mlp', outputs: expect.any(Array) as unknown });
}

const post = (body: unknown): CallOptions => ({ body: typeof body === 'string' ? body : JSON.stringify(body) });
const input = (fields: Record<string, unknown>) => ({
  inputs: [{ name: 'x', shape: [1, 16], datatype: 'FP32', ...fields }],
});
const bin = (header: unknown, bytes: Uint8Array) => binaryBody(header, [bytes]);
const xBytes = bytesOf(Float32Array.from(X));
const binaryInput = (size: number) => ({
  inputs: [{ name: 'x', shape: [1, 16], datatype: 'FP32', parameters: { binary_data_size: size } }],
});

describe('bad requests', () => {
  const cases: [string, CallOptions, string, RegExp][] = [
    ['malformed JSON', post('{"inputs": ['), 'INPUT_INVALID', /not valid JSON/],
    ['an empty body', post(''), 'INPUT_INVALID', /not valid JSON/],
    ['a JSON array', post([1, 2]), 'INPUT_INVALID', /JSON object with "inputs"/],
    ['no inputs', post({}), 'INPUT_INVALID', /"inputs" must be an array/],
    ['an input without a name', post({ inputs: [{ shape: [1] }] }), 'INPUT_INVALID', /inputs\[0\] needs a "name"/],
    [
      'an unknown input',
      post({ inputs: [{ name: 'nope', shape: [1], datatype: 'FP32', data: [0] }] }),
      'INPUT_NAME_UNKNOWN',
      /unknown input "nope"; the model's inputs: x/,
    ],
    ['a missing input', post({ inputs: [] }), 'INPUT_MISSING', /"x"/],
    ['an input given twice', post({ inputs: [good.inputs[0], good.inputs[0]] }), 'INPUT_INVALID', /"x" is given twice/],
    ['an unknown datatype', post(input({ datatype: 'FP33', data: X })), 'INPUT_DTYPE_MISMATCH', /"FP33"/],
    ['a wrong datatype', post(input({ datatype: 'INT32', data: X.map(() => 1) })), 'INPUT_DTYPE_MISMATCH', /"x"/],
    ['a shape that does not fit the model', post(input({ shape: [2, 8], data: X })), 'INPUT_SHAPE_MISMATCH', /"x"/],
    ['a shape of the wrong rank', post(input({ shape: [16], data: X })), 'INPUT_SHAPE_MISMATCH', /"x"/],
    [
      'data that does not fill the shape',
      post(input({ data: X.slice(1) })),
      'INPUT_SHAPE_MISMATCH',
      /shape \[1, 16\] needs 16 elements, data has 15/,
    ],
    ['a shape with a negative size', post(input({ shape: [1, -16], data: X })), 'INPUT_INVALID', /"shape"/],
    ['a shape with a string', post(input({ shape: [1, 'NaN'], data: X })), 'INPUT_INVALID', /"shape".*"NaN"/],
    ['a shape with a fraction', post(input({ shape: [1, 15.5], data: X })), 'INPUT_INVALID', /15\.5/],
    ['data that is not numbers', post(input({ data: X.map(() => 'a') })), 'INPUT_INVALID', /element 0 \("a"\)/],
    [
      'data nested deeper than any tensor',
      post(input({ data: JSON.parse(`${'['.repeat(40)}1${']'.repeat(40)}`) as unknown })),
      'INPUT_INVALID',
      /nested deeper than 32/,
    ],
    [
      'a shape nested thousands deep',
      post(
        `{"inputs": [{"name": "x", "datatype": "FP32", "data": [], "shape": [1, ${'['.repeat(1e4)}${']'.repeat(1e4)}]}]}`,
      ),
      'INPUT_INVALID',
      /"shape" must hold non-negative integers, got an array of 1/,
    ],
    [
      'data holding an object nested thousands deep',
      post(
        `{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 1], "data": [${'{"a":'.repeat(1e4)}1${'}'.repeat(1e4)}]}]}`,
      ),
      'INPUT_INVALID',
      /"data" element 0 is an object/,
    ],
    ['an unknown output', post({ ...good, outputs: [{ name: 'nope' }] }), 'INPUT_INVALID', /unknown output "nope"/],
    [
      'binary_data_size without the header',
      post(binaryInput(64)),
      'INPUT_INVALID',
      /no inference-header-content-length/,
    ],
    [
      'a header length past the body',
      { body: xBytes, headers: { 'inference-header-content-length': 1000 } },
      'INPUT_INVALID',
      /is 1000 but the body has only 64 bytes/,
    ],
    [
      'a header length that is not a number',
      { body: xBytes, headers: { 'inference-header-content-length': '-3' } },
      'INPUT_INVALID',
      /must be one non-negative integer/,
    ],
    [
      'a header length that cuts the JSON short',
      { ...bin(binaryInput(64), xBytes), headers: { 'inference-header-content-length': 10 } },
      'INPUT_INVALID',
      /not valid JSON/,
    ],
    ['a binary_data_size past the end', bin(binaryInput(65), xBytes), 'INPUT_INVALID', /runs past the end/],
    ['bytes no input accounts for', bin(binaryInput(60), xBytes), 'INPUT_INVALID', /add up to 60 bytes, but 64/],
    ['a negative binary_data_size', bin(binaryInput(-1), xBytes), 'INPUT_INVALID', /non-negative integer, got -1/],
    [
      'binary data that does not fit the shape',
      bin({ inputs: [{ ...binaryInput(64).inputs[0], shape: [1, 8] }] }, xBytes),
      'INPUT_INVALID',
      /binary_data_size is 64 bytes but shape \[1, 8\] of FP32 needs 32/,
    ],
    [
      'an image body for a model without image pre-processing',
      { body: xBytes, headers: { 'content-type': 'image/png' } },
      'UNSUPPORTED_MEDIA_TYPE',
      /declares no image pre-processing/,
    ],
  ];

  it.each(cases)('answers %s with a 4xx naming the problem, and keeps serving', async (_, options, code, message) => {
    const reply = await call(url, '/v2/models/mlp/infer', { ...options, agent });
    const body = json(reply);
    expect([reply.status, body.code]).toEqual([code === 'UNSUPPORTED_MEDIA_TYPE' ? 415 : 400, code]);
    expect(body.error).toMatch(message);
    await expectServing();
  });

  it('answers 404 naming what is served for an unknown model, version or route, and 405 for a wrong method', async () => {
    const ghost = await call(url, '/v2/models/ghost/infer', { ...post(good), agent });
    expect([ghost.status, json(ghost).code]).toEqual([404, 'MODEL_NOT_FOUND']);
    expect(json(ghost).error).toBe('unknown model "ghost"; serving: mlp, classifier');
    const version = await call(url, '/v2/models/classifier/versions/3.0.0/infer', { ...post(good), agent });
    expect([version.status, json(version).error]).toEqual([
      404,
      'model "classifier" has no version "3.0.0"; versions: 1.0.0, 2.0.0',
    ]);
    expect((await call(url, '/v2/models/ghost/ready', { agent })).status).toBe(404);
    expect((await call(url, '/v2/models/mlp/versions/9', { agent })).status).toBe(404);
    expect(json(await call(url, '/v1/models/mlp:predict', { agent }))).toMatchObject({ code: 'NOT_FOUND' });
    expect(json(await call(url, '/v2/models/%E0%A4%A/infer', { agent }))).toMatchObject({ code: 'BAD_REQUEST' });
    expect((await call(url, '/v2/models/mlp/infer', { agent })).status).toBe(405);
    expect((await call(url, '/v2/models/mlp', { ...post(good), agent })).status).toBe(405);
    await expectServing();
  });

  it('answers an empty batch with empty outputs, post-processing included', async () => {
    const outputs = ['logits', 'logits.probabilities', 'logits.argmax', 'logits.top_k_labels'].map((name) => ({
      name,
    }));
    const reply = await call(url, '/v2/models/mlp/infer', {
      ...post({ ...input({ shape: [0, 16], data: [] }), outputs }),
      agent,
    });
    expect(reply.status).toBe(200);
    const body = json(reply) as { outputs: { name: string; shape: number[]; data: unknown[] }[] };
    expect(body.outputs.map((o) => [o.name, o.shape[0], o.data.length])).toEqual(outputs.map((o) => [o.name, 0, 0]));
  });

  it('routes each model and each version to itself', async () => {
    expect(json(await call(url, '/v2/models/mlp/versions/1/infer', { ...post(good), agent }))).toMatchObject({
      model_name: 'mlp',
      model_version: '1',
    });
    for (const version of ['1.0.0', '2.0.0']) {
      const meta = json(await call(url, `/v2/models/classifier/versions/${version}`, { agent }));
      expect(meta).toMatchObject({ name: 'classifier', versions: ['1.0.0', '2.0.0'] });
      expect((await call(url, `/v2/models/classifier/versions/${version}/ready`, { agent })).status).toBe(200);
    }
    // A tensor request for the image model (no image: its input is FP32) reaches the version asked for.
    const image = {
      inputs: [{ name: 'image', shape: [1, 3, 64, 64], datatype: 'FP32', data: new Array(12288).fill(0) }],
    };
    const reply = json(await call(url, '/v2/models/classifier/versions/2.0.0/infer', { ...post(image), agent }));
    expect(reply).toMatchObject({ model_name: 'classifier', model_version: '2.0.0' });
  });
});

describe('body limit', () => {
  it('refuses a declared Content-Length over the limit with 413 before the body is sent, and closes', async () => {
    const socket = await rawSocket(url);
    const reply = readUntilClose(socket);
    socket.write(
      head([
        'POST /v2/models/mlp/infer HTTP/1.1',
        'host: test',
        'content-type: application/json',
        `content-length: ${1024 * 1024 * 1024}`,
      ]),
    );
    const text = await reply; // no byte of the body was ever sent: the answer cannot have waited for it
    expect(rawStatus(text)).toBe(413);
    expect(text.toLowerCase()).toContain('connection: close');
    expect(rawJson(text)).toMatchObject({
      code: 'BODY_TOO_LARGE',
      error: expect.stringContaining(`${LIMIT}-byte limit`) as unknown,
    });
    await expectServing();
  });

  it('refuses a chunked body as soon as it passes the limit, without waiting for its end', async () => {
    const socket = await rawSocket(url);
    const reply = readUntilClose(socket);
    socket.write(head(['POST /v2/models/mlp/infer HTTP/1.1', 'host: test', 'transfer-encoding: chunked']));
    const chunk = Buffer.alloc(8 * 1024, 0x20); // JSON whitespace
    for (let sent = 0; sent <= LIMIT; sent += chunk.length) {
      socket.write(`${chunk.length.toString(16)}\r\n`);
      socket.write(chunk);
      socket.write('\r\n');
    }
    const text = await reply; // the terminating chunk was never sent
    expect(rawStatus(text)).toBe(413);
    expect(rawJson(text)).toMatchObject({ code: 'BODY_TOO_LARGE' });
    await expectServing();
  });

  it('refuses an image body over the limit too', async () => {
    const reply = await call(url, '/v2/models/classifier/versions/1.0.0/infer', {
      body: Buffer.alloc(LIMIT + 1),
      headers: { 'content-type': 'image/jpeg' },
    });
    expect([reply.status, json(reply).code]).toEqual([413, 'BODY_TOO_LARGE']);
    await expectServing();
  });
});

describe('clients that leave mid-request', () => {
  it.each([
    ['with a Content-Length', 'content-length: 10000'],
    ['chunked', 'transfer-encoding: chunked'],
  ])('forgets a request whose client disconnects mid-body (%s)', async (_, framing) => {
    const socket = await rawSocket(url);
    const closed = readUntilClose(socket);
    const partial = framing.startsWith('content') ? '{"inputs": [{"name": "x", ' : '10\r\n{"inputs": [{"na';
    socket.write(head(['POST /v2/models/mlp/infer HTTP/1.1', 'host: test', framing], partial));
    await until(() => server.inFlight === 1, 'the request to reach the handler');
    socket.destroy();
    expect(await closed).toBe(''); // nothing was answered
    await until(() => server.inFlight === 0, 'the abandoned request to be dropped');
    await expectServing();
  });
});

describe('HTTP requests Node cannot parse', () => {
  it.each([
    ['garbage', 'hello\r\n\r\n', 400],
    ['a bad method', 'BR3W /v2 HTTP/1.1\r\nhost: x\r\n\r\n', 400],
    ['a bad Content-Length', 'POST /v2/models/mlp/infer HTTP/1.1\r\ncontent-length: ten\r\n\r\n', 400],
    [
      'both framings',
      'POST /v2/models/mlp/infer HTTP/1.1\r\ncontent-length: 4\r\ntransfer-encoding: chunked\r\n\r\n',
      400,
    ],
    ['headers too large', `GET /v2 HTTP/1.1\r\nx-big: ${'a'.repeat(20_000)}\r\n\r\n`, 431],
  ])('answers %s with a JSON error and closes the connection', async (_, raw, status) => {
    const socket = await rawSocket(url);
    const reply = readUntilClose(socket);
    socket.write(raw);
    const text = await reply;
    expect(rawStatus(text)).toBe(status);
    expect(rawJson(text).code).toEqual(expect.any(String));
    await expectServing();
  });
});
