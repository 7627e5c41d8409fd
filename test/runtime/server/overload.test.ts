import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Model } from '../../../runtime/model/model.js';
import { batchingScheduler } from '../../../runtime/server/scheduling/batching.js';
import { StaticRepository } from '../../../runtime/server/serving/model-repository.js';
import { directScheduler } from '../../../runtime/server/scheduling/direct.js';
import type { InferenceServer } from '../../../runtime/server/http/server.js';
import type { ModelService } from '../../../runtime/server/serving/service.js';
import { suiteTmpDir } from '../../helpers/tmp.js';
import { call, json, startServer, until, type Reply } from '../../helpers/http-client.js';
import { buildFixture } from '../../helpers/serving-artifacts.js';
import { Gate, loadGated } from './gate.js';

/**
 * Requests held in inference: the model runs on the real native engine behind a gate the test opens (gate.ts), so
 * "while inference runs" and "the queue is full" are states the test waits for, not durations it guesses.
 */
const gate = new Gate();
let model: Model;
let server: InferenceServer;
let url: string;
let service: ModelService;
let dispose: () => Promise<void>;

const X = Array.from({ length: 16 }, (_, i) => i / 16);
const BODY = JSON.stringify({ inputs: [{ name: 'x', shape: [1, 16], datatype: 'FP32', data: X }] });

beforeAll(async () => {
  const tmp = await suiteTmpDir();
  dispose = tmp.dispose;
  model = await loadGated(await buildFixture(tmp.dir, 'mlp'), gate);
  const repository = await new StaticRepository({ scheduler: directScheduler({ concurrency: 1, maxQueue: 1 }) }).add(
    model,
  );
  service = repository.service('mlp') as ModelService;
  ({ server, url } = await startServer({ repository }));
});
afterAll(async () => {
  gate.open();
  await server.close();
  await model.release();
  await dispose();
});

const infer = (): Promise<Reply> => call(url, '/v2/models/mlp/infer', { body: BODY });
const load = () => service.load()[0] ?? { queued: -1, running: -1 };
const idle = () => load().queued === 0 && load().running === 0 && server.inFlight === 0;

describe('overload', () => {
  it('answers 503 with Retry-After when the one slot and the queue are taken, and serves the rest', async () => {
    gate.close();
    const first = infer();
    await until(() => gate.waiting === 1, 'the first request to run');
    const second = infer();
    await until(() => load().queued === 1, 'the second request to queue');
    const third = await infer();
    expect(third.status).toBe(503);
    expect(third.headers['retry-after']).toBe('1');
    expect(json(third)).toMatchObject({ code: 'OVERLOADED', error: expect.stringContaining('mlp@1') as unknown });
    gate.open();
    expect((await Promise.all([first, second])).map((r) => r.status)).toEqual([200, 200]);
    await until(idle, 'the scheduler to empty');
    expect((await infer()).status).toBe(200);
  });

  it('answers 503 through the batching scheduler too', async () => {
    const tmp = await suiteTmpDir();
    const batched = await loadGated(await buildFixture(tmp.dir, 'mlp'), gate);
    const repository = await new StaticRepository({
      scheduler: batchingScheduler({ maxBatchSize: 1, maxQueueDelayMs: 0, concurrency: 1, maxQueue: 1 }),
    }).add(batched);
    const started = await startServer({ repository });
    try {
      gate.close();
      const path = '/v2/models/mlp/infer';
      const first = call(started.url, path, { body: BODY });
      await until(() => gate.waiting === 1, 'the first batch to run');
      const second = call(started.url, path, { body: BODY });
      await until(() => repository.service('mlp')?.load()[0]?.queued === 1, 'the second request to queue');
      const third = await call(started.url, path, { body: BODY });
      expect([third.status, third.headers['retry-after'], json(third).code]).toEqual([503, '1', 'OVERLOADED']);
      gate.open();
      expect((await Promise.all([first, second])).map((r) => r.status)).toEqual([200, 200]);
    } finally {
      gate.open();
      await started.server.close();
      await repository.close();
      await batched.release();
      await tmp.dispose();
    }
  });
});

describe('clients that leave while inference runs', () => {
  it.each([
    ['running', false, () => gate.waiting === 1],
    ['queued', true, () => load().queued === 1],
  ])('drops the answer of a request whose client left while it was %s, and keeps serving', async (_, hold, ready) => {
    gate.close();
    const runsBefore = gate.runs;
    // A first request takes the one slot, so that the abandoned one queues behind it.
    const holder = hold ? infer() : undefined;
    if (hold) await until(() => gate.waiting === 1, 'the first request to run');
    const { hostname, port } = new URL(url);
    const req = request({ host: hostname, port, path: '/v2/models/mlp/infer', method: 'POST' });
    const outcome = new Promise<string>((resolve) => {
      req.on('response', (res) => resolve(`answered ${res.statusCode ?? 0}`));
      req.on('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
    });
    req.end(BODY);
    await until(ready, 'the abandoned request to reach inference');
    req.destroy();
    expect(await outcome).toBe('ECONNRESET');
    gate.open();
    if (holder !== undefined) expect((await holder).status).toBe(200);
    await until(idle, 'the server and the scheduler to empty');
    // One model run either way: the abandoned request if it was already running, else only the request ahead of
    // it — a queued request whose client left is taken out of the queue, never run.
    expect(gate.runs - runsBefore).toBe(1);
    expect((await infer()).status).toBe(200);
  });

  it('lets in-flight requests finish when the server closes, and ends their keep-alive connections', async () => {
    const tmp = await suiteTmpDir();
    const own = await loadGated(await buildFixture(tmp.dir, 'mlp'), gate);
    // A grace period longer than any test: close() must not wait for it when the answers end their connections.
    const started = await startServer({
      repository: await new StaticRepository().add(own),
      timeouts: { closeGraceMs: 10 * 60_000 },
    });
    try {
      gate.close();
      const pending = call(started.url, '/v2/models/mlp/infer', { body: BODY });
      await until(() => gate.waiting === 1, 'the request to run');
      const closed = started.server.close();
      gate.open();
      const reply = await pending;
      expect([reply.status, reply.headers.connection]).toEqual([200, 'close']);
      await closed;
      expect(started.server.inFlight).toBe(0);
    } finally {
      gate.open();
      await started.server.close();
      await own.release();
      await tmp.dispose();
    }
  });
});
