import { Agent } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isOutpostError } from '../../../runtime/errors.js';
import type { Model } from '../../../runtime/model/model.js';
import { BearerAuth } from '../../../runtime/server/http/auth.js';
import { HttpError } from '../../../runtime/server/http/status.js';
import { ServerMetrics } from '../../../runtime/server/metrics/prometheus.js';
import { StaticRepository } from '../../../runtime/server/serving/model-repository.js';
import type { InferenceServer } from '../../../runtime/server/http/server.js';
import { suiteTmpDir } from '../../helpers/tmp.js';
import { call, json, startServer } from '../../helpers/http-client.js';
import { loadFixtures } from '../../helpers/serving-artifacts.js';

/** The optional bearer token: everything but the health checks needs it; a wrong or missing one is 401. */
const TOKEN = 'edge-T0ken_with.all~the+chars/=';
let model: Model;
let server: InferenceServer;
let url: string;
let dispose: () => Promise<void>;
const agent = new Agent({ keepAlive: true, maxSockets: 1 });

beforeAll(async () => {
  const tmp = await suiteTmpDir();
  dispose = tmp.dispose;
  ({ mlp: model } = await loadFixtures(tmp.dir, ['mlp']));
  const metrics = new ServerMetrics();
  const repository = await new StaticRepository({ observers: [metrics.observer] }).add(model);
  metrics.watch(repository);
  ({ server, url } = await startServer({ repository, token: TOKEN, metrics: () => metrics.text() }));
});
afterAll(async () => {
  agent.destroy();
  await server.close();
  await model.release();
  await dispose();
});

const BODY = JSON.stringify({
  inputs: [{ name: 'x', shape: [1, 16], datatype: 'FP32', data: new Array<number>(16).fill(0.25) }],
});
const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

describe('bearer token', () => {
  it('leaves the health checks open', async () => {
    for (const path of [
      '/v2/health/live',
      '/v2/health/ready',
      '/v2/models/mlp/ready',
      '/v2/models/mlp/versions/1/ready',
    ])
      expect([path, (await call(url, path, { agent })).status]).toEqual([path, 200]);
  });

  it.each([
    ['/v2', 'GET'],
    ['/v2/models/mlp', 'GET'],
    ['/v2/models/mlp/infer', 'POST'],
    ['/v2/models/ghost/infer', 'POST'],
    ['/metrics', 'GET'],
  ])('answers 401 with a Bearer challenge to %s without a token, and closes the connection', async (path, method) => {
    const reply = await call(url, path, { method, ...(method === 'POST' ? { body: BODY } : {}), agent });
    expect([reply.status, json(reply).code]).toEqual([401, 'UNAUTHORIZED']);
    expect(reply.headers['www-authenticate']).toBe('Bearer realm="outpost"');
    expect(reply.headers.connection).toBe('close');
  });

  it.each([
    ['a wrong token of the same length', `x${TOKEN.slice(1)}`],
    ['a prefix of the token', TOKEN.slice(0, 5)],
    ['the token with a character in front', `A${TOKEN}`],
    ['a one-character token', 'a'],
    ['a long token', 'b'.repeat(4096)],
  ])('answers 401 invalid_token to %s', async (_, token) => {
    const reply = await call(url, '/v2/models/mlp/infer', { body: BODY, headers: bearer(token), agent });
    expect([reply.status, json(reply).code]).toEqual([401, 'UNAUTHORIZED']);
    expect(reply.headers['www-authenticate']).toBe('Bearer realm="outpost", error="invalid_token"');
  });

  it.each([
    ['another scheme', `Basic ${Buffer.from(`u:${TOKEN}`).toString('base64')}`],
    ['no token after the scheme', 'Bearer '],
    ['a token with a space in it', `Bearer ${TOKEN} extra`],
  ])('answers 401 to %s', async (_, authorization) => {
    const reply = await call(url, '/v2/models/mlp', { headers: { authorization }, agent });
    expect(reply.status).toBe(401);
  });

  it('serves every route with the token, the scheme in any case', async () => {
    const reply = await call(url, '/v2/models/mlp/infer', { body: BODY, headers: bearer(TOKEN), agent });
    expect(reply.status).toBe(200);
    expect((await call(url, '/v2', { headers: { authorization: `bEaReR ${TOKEN}` }, agent })).status).toBe(200);
    const metrics = await call(url, '/metrics', { headers: bearer(TOKEN), agent });
    expect(metrics.status).toBe(200);
    expect(metrics.body.toString()).toContain('outpost_inference_requests_total{model="mlp",version="1"} 1');
  });
});

describe('BearerAuth', () => {
  it('compares digests, so that no presented length can make the comparison throw or short-cut', () => {
    const auth = new BearerAuth(TOKEN);
    for (let length = 1; length <= 2 * TOKEN.length; length++) {
      const presented = TOKEN.repeat(2).slice(0, length);
      let error: unknown;
      try {
        auth.check(`Bearer ${presented}`);
      } catch (e) {
        error = e;
      }
      if (presented === TOKEN) expect(error).toBeUndefined();
      else expect(error instanceof HttpError && error.status === 401).toBe(true);
    }
  });

  it.each([[''], ['two words'], ['quote"d'], ['ünïcode']])('refuses %j as a server token', (token) => {
    let error: unknown;
    try {
      new BearerAuth(token);
    } catch (e) {
      error = e;
    }
    expect(isOutpostError(error) && error.code === 'INVALID_ARGUMENT').toBe(true);
  });
});
