import type { Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Model } from '../../../runtime/model/model.js';
import { StaticRepository } from '../../../runtime/server/serving/model-repository.js';
import type { InferenceServer, ServerTimeouts } from '../../../runtime/server/http/server.js';
import { suiteTmpDir } from '../../helpers/tmp.js';
import {
  call,
  head,
  rawJson,
  rawSocket,
  rawStatus,
  readUntilClose,
  sleep,
  startServer,
  until,
} from '../../helpers/http-client.js';
import { buildFixture } from '../../helpers/serving-artifacts.js';
import { Gate, loadGated } from './gate.js';

/**
 * Slow clients against short server timeouts: a client that trickles its headers or its body gets 408 and loses
 * its connection when the timeout passes, however steadily it keeps sending; everyone else is served.
 */
const TIMEOUTS: Partial<ServerTimeouts> = {
  headersMs: 300, // ms
  requestMs: 600, // ms
  checkIntervalMs: 50, // ms
};
/** Between two trickled bytes: far below the timeouts, so that only the total time can trip them. */
const TRICKLE_MS = 40; // ms

const gate = new Gate();
let model: Model;
let server: InferenceServer;
let url: string;
let dispose: () => Promise<void>;

beforeAll(async () => {
  const tmp = await suiteTmpDir();
  dispose = tmp.dispose;
  gate.open();
  model = await loadGated(await buildFixture(tmp.dir, 'mlp'), gate);
  ({ server, url } = await startServer({ repository: await new StaticRepository().add(model), timeouts: TIMEOUTS }));
});
afterAll(async () => {
  gate.open();
  await server.close();
  await model.release();
  await dispose();
});

const BODY = JSON.stringify({
  inputs: [{ name: 'x', shape: [1, 16], datatype: 'FP32', data: new Array<number>(16).fill(0.5) }],
});

/** Writes `text` one byte at a time until it is all sent or the server closes the connection. */
async function trickle(socket: Socket, text: string): Promise<void> {
  for (const byte of text) {
    if (socket.destroyed || socket.writableEnded) return;
    socket.write(byte);
    await sleep(TRICKLE_MS);
  }
}

async function expectServing(): Promise<void> {
  const reply = await call(url, '/v2/models/mlp/infer', { body: BODY });
  expect(reply.status).toBe(200);
}

describe('slow clients', () => {
  it('answers 408 to headers trickled slower than the headers timeout, and closes the connection', async () => {
    const socket = await rawSocket(url);
    const reply = readUntilClose(socket);
    // Enough header bytes to outlast both timeouts many times over at TRICKLE_MS each.
    const sent = trickle(socket, `GET /v2/health/live HTTP/1.1\r\nhost: test\r\nx-slow: ${'a'.repeat(200)}\r\n\r\n`);
    const text = await reply;
    await sent;
    expect(rawStatus(text)).toBe(408);
    expect(rawJson(text)).toMatchObject({
      code: 'REQUEST_TIMEOUT',
      error: expect.stringContaining('300 ms') as unknown,
    });
    await expectServing();
  });

  it('answers 408 to a body trickled slower than the request timeout', async () => {
    const socket = await rawSocket(url);
    const reply = readUntilClose(socket);
    socket.write(head(['POST /v2/models/mlp/infer HTTP/1.1', 'host: test', `content-length: ${BODY.length}`]));
    const sent = trickle(socket, BODY); // ~150 bytes at TRICKLE_MS each: far longer than requestMs
    const text = await reply;
    await sent;
    expect(rawStatus(text)).toBe(408);
    expect(rawJson(text).code).toBe('REQUEST_TIMEOUT');
    await until(() => server.inFlight === 0, 'the timed-out request to be dropped');
    await expectServing();
  });

  it('answers 408 to a connection that never sends a request, and closes it', async () => {
    const socket = await rawSocket(url);
    expect(rawStatus(await readUntilClose(socket))).toBe(408);
    await expectServing();
  });

  it('does not count inference time against the request timeout', async () => {
    gate.close();
    const pending = call(url, '/v2/models/mlp/infer', { body: BODY });
    await until(() => gate.waiting === 1, 'the request to reach inference');
    await sleep(2 * (TIMEOUTS.requestMs ?? 0)); // held in inference past the request timeout, on purpose
    gate.open();
    expect((await pending).status).toBe(200);
  });
});
