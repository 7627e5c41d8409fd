import { Agent } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Model } from '../../../runtime/model/model.js';
import { errorResponse } from '../../../runtime/server/http/status.js';
import { parseTensorBody } from '../../../runtime/server/http/infer.js';
import { servingPipeline } from '../../../runtime/server/serving/pipeline.js';
import { StaticRepository } from '../../../runtime/server/serving/model-repository.js';
import type { InferenceServer } from '../../../runtime/server/http/server.js';
import { suiteTmpDir } from '../../helpers/tmp.js';
import {
  bytesElements,
  bytesOf,
  call,
  decodeInfer,
  json,
  rawSocket,
  readUntilClose,
  startServer,
  type Reply,
  until,
} from '../../helpers/http-client.js';
import { loadFixtures, testImage } from '../../helpers/serving-artifacts.js';
import { Mutator, type FuzzCase, type Seed } from './mutate.js';

/**
 * The request parser under fire, with a fixed seed (a failure names its case and replays the same way): random
 * bytes and mutations of valid JSON and binary-extension requests. Every answer is a success or a 4xx, never a
 * 5xx, a hang or a crash; the server still serves afterwards. Directly against the parse functions (many cases,
 * fast) and through the real HTTP server (fewer, end to end).
 */
/** Another seed or more cases for a longer hunt: OUTPOST_FUZZ_SEED=7 OUTPOST_FUZZ_SCALE=20 npx vitest run …/fuzz */
const SEED = Number(process.env.OUTPOST_FUZZ_SEED ?? 0x5eed);
const SCALE = Number(process.env.OUTPOST_FUZZ_SCALE ?? 1);
const DIRECT_CASES = 4000 * SCALE; // parse-function calls
const HTTP_CASES = 800 * SCALE; // requests over keep-alive connections
const RAW_CASES = 60; // connections with damaged HTTP framing
const CONCURRENCY = 4; // requests in flight at once over HTTP
const LIMIT = 256 * 1024; // bytes: the body limit of the server under test

let models: Awaited<ReturnType<typeof load>>;
let byName: Map<string, Model>;
let seeds: Seed[];
let server: InferenceServer;
let url: string;
let dispose: () => Promise<void>;
const agent = new Agent({ keepAlive: true, maxSockets: CONCURRENCY });

const load = (dir: string) => loadFixtures(dir, ['mlp', 'echo', 'classifier']);

function makeSeeds(png: Buffer): Seed[] {
  const x = Array.from({ length: 32 }, (_, i) => Math.sin(i));
  const xBytes = bytesOf(Float32Array.from(x));
  const words = bytesElements(['héllo', '', 'wörld']);
  const framed = bytesElements([png]);
  return [
    { model: 'mlp', header: { id: 'a', inputs: [{ name: 'x', shape: [2, 16], datatype: 'FP32', data: x }] } },
    {
      model: 'mlp',
      header: {
        inputs: [{ name: 'x', shape: [2, 16], datatype: 'FP32', data: [x.slice(0, 16), x.slice(16)] }],
        outputs: [{ name: 'logits.top_k_labels', parameters: { binary_data: true } }, { name: 'logits.argmax' }],
      },
    },
    {
      model: 'mlp',
      header: {
        inputs: [{ name: 'x', shape: [2, 16], datatype: 'FP32', parameters: { binary_data_size: xBytes.length } }],
        parameters: { binary_data_output: true },
      },
      binary: xBytes,
    },
    { model: 'echo', header: { inputs: [{ name: 'text', shape: [3], datatype: 'BYTES', data: ['a', 'b', 'ç'] }] } },
    {
      model: 'echo',
      header: {
        inputs: [{ name: 'text', shape: [3], datatype: 'BYTES', parameters: { binary_data_size: words.length } }],
        outputs: [{ name: 'same', parameters: { binary_data: true } }],
      },
      binary: words,
    },
    {
      model: 'classifier',
      header: { inputs: [{ name: 'image', shape: [1], datatype: 'BYTES', data: [png.toString('base64')] }] },
    },
    {
      model: 'classifier',
      header: {
        inputs: [{ name: 'image', shape: [1], datatype: 'BYTES', parameters: { binary_data_size: framed.length } }],
      },
      binary: framed,
    },
  ];
}

beforeAll(async () => {
  const tmp = await suiteTmpDir();
  dispose = tmp.dispose;
  const [loaded, png] = await Promise.all([load(tmp.dir), testImage('png', 3, 24, 20)]);
  models = loaded;
  byName = new Map(Object.values<Model>(models).map((m) => [m.name, m]));
  seeds = makeSeeds(png);
  const repository = new StaticRepository();
  for (const model of byName.values()) await repository.add(model);
  ({ server, url } = await startServer({ repository, maxBodyBytes: LIMIT }));
});
afterAll(async () => {
  agent.destroy();
  await server.close();
  for (const model of byName.values()) await model.release();
  await dispose();
});

/** The case in a form a failure message can carry and a test can replay. */
function describeCase(index: number, c: FuzzCase): string {
  const length = c.headerLength === undefined ? '' : `, header length ${JSON.stringify(c.headerLength)}`;
  return `case ${index} (${c.how}, ${c.model}, ${c.contentType}${length}): ${c.body.toString('base64').slice(0, 400)}`;
}

describe('request parser fuzz', () => {
  it(`answers ${DIRECT_CASES} hostile bodies with a request or a 4xx, straight from the parse functions`, async () => {
    const mutator = new Mutator(SEED);
    const statuses = new Map<number, number>();
    for (let i = 0; i < DIRECT_CASES; i++) {
      const c = mutator.next(seeds);
      const model = byName.get(c.model) as Model;
      let status = 200;
      try {
        const { feeds } = await parseTensorBody(c.body, c.headerLength, model, await servingPipeline(model));
        model.check(feeds);
      } catch (error) {
        status = errorResponse(error).status;
        if (status < 400 || status > 499) throw new Error(`${describeCase(i, c)} → ${status} ${String(error)}`);
      }
      statuses.set(status, (statuses.get(status) ?? 0) + 1);
    }
    // The mutations reach past the first checks: some requests survive them, most do not.
    expect(statuses.get(200) ?? 0).toBeGreaterThan(0);
    expect(statuses.get(400) ?? 0).toBeGreaterThan(DIRECT_CASES / 2);
  });

  it(`answers ${HTTP_CASES} hostile requests over HTTP with a 200 or a 4xx, each well-formed`, async () => {
    const mutator = new Mutator(SEED + 1);
    const cases = Array.from({ length: HTTP_CASES }, () => mutator.next(seeds));
    const seen = new Set<number>();
    let next = 0;
    const worker = async () => {
      for (let i = next++; i < cases.length; i = next++) {
        const c = cases[i] as FuzzCase;
        const reply = await call(url, `/v2/models/${c.model}/infer`, {
          body: c.body,
          agent,
          headers: {
            'content-type': c.contentType,
            ...(c.headerLength === undefined ? {} : { 'inference-header-content-length': c.headerLength }),
          },
        }).catch((error: unknown) => {
          throw new Error(`${describeCase(i, c)} → ${String(error)}`);
        });
        seen.add(reply.status);
        expectWellFormed(reply, describeCase(i, c));
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    expect(seen.has(200)).toBe(true);
    await until(() => server.inFlight === 0, 'every request to be finished');
    await expectServing();
  });

  it(`answers ${RAW_CASES} damaged HTTP requests with a 4xx (or a 200), never a 5xx`, async () => {
    const mutator = new Mutator(SEED + 2);
    const body = JSON.stringify(seeds[0]?.header);
    const valid = Buffer.from(
      `POST /v2/models/mlp/infer HTTP/1.1\r\nhost: fuzz\r\ncontent-type: application/json\r\n` +
        `content-length: ${body.length}\r\n\r\n${body}`,
    );
    for (let i = 0; i < RAW_CASES; i++) {
      const request = i % 4 === 0 ? mutator.bytes(1 + mutator.int(256)) : mutator.mutateBytes(valid);
      const socket = await rawSocket(url);
      const reply = readUntilClose(socket);
      socket.end(request); // a request cut short meets the end of the stream, not a timeout
      const text = await reply;
      const statuses = [...text.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => Number(m[1]));
      const what = `raw case ${i}: ${request.toString('base64')} → ${text.slice(0, 200)}`;
      expect(
        statuses.every((s) => s === 200 || (s >= 400 && s <= 499)),
        what,
      ).toBe(true);
    }
    await expectServing();
  });
});

function expectWellFormed(reply: Reply, what: string): void {
  const type = reply.headers['content-type'];
  if (reply.status === 200) {
    expect(() => decodeInfer(reply), what).not.toThrow();
    return;
  }
  expect(reply.status >= 400 && reply.status <= 499, `${what} → ${reply.status} ${reply.body.toString()}`).toBe(true);
  expect(type, what).toBe('application/json');
  const body = json(reply);
  expect([typeof body.error, typeof body.code], what).toEqual(['string', 'string']);
}

async function expectServing(): Promise<void> {
  const reply = await call(url, '/v2/models/mlp/infer', { body: JSON.stringify(seeds[0]?.header), agent });
  expect(reply.status).toBe(200);
}
