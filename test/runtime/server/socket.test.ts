import { spawn } from 'node:child_process';
import { lstat, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Model } from '../../../runtime/model/model.js';
import { StaticRepository } from '../../../runtime/server/serving/model-repository.js';
import { InferenceServer } from '../../../runtime/server/http/server.js';
import { tmpDir, suiteTmpDir } from '../../helpers/tmp.js';
import { call, json } from '../../helpers/http-client.js';
import { loadFixtures } from '../../helpers/serving-artifacts.js';

/** Serving on a unix socket: the same protocol, a path instead of a port, and care with what is at that path. */
let model: Model;
let repository: StaticRepository;
let dispose: () => Promise<void>;
const CHILD_READY_MS = 10_000; // ms for a bare node process to listen

beforeAll(async () => {
  const tmp = await suiteTmpDir();
  dispose = tmp.dispose;
  ({ mlp: model } = await loadFixtures(tmp.dir, ['mlp']));
  repository = await new StaticRepository().add(model);
});
afterAll(async () => {
  await model.release();
  await dispose();
});

const BODY = JSON.stringify({
  inputs: [{ name: 'x', shape: [1, 16], datatype: 'FP32', data: new Array<number>(16).fill(1) }],
});

async function serve(socket: string): Promise<{ server: InferenceServer; url: string }> {
  const server = new InferenceServer({ repository, socket });
  return { server, url: (await server.listen()).url };
}

/** A unix socket left behind by a process that died without closing it (SIGKILL). */
async function staleSocket(path: string): Promise<void> {
  const child = spawn(
    process.execPath,
    ['-e', "require('net').createServer().listen(process.argv[1], () => console.log('up'))", path],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the child never listened')), CHILD_READY_MS);
    child.stdout.once('data', () => {
      clearTimeout(timer);
      resolve();
    });
  });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGKILL');
  await exited;
}

describe('unix socket', () => {
  it('serves the protocol on a socket and removes the socket when it closes', async () => {
    const path = join(await tmpDir(), 'outpost.sock');
    const { server, url } = await serve(path);
    try {
      expect(url).toBe(`unix:${path}`);
      expect(json(await call(url, '/v2/health/live'))).toEqual({ live: true });
      const reply = await call(url, '/v2/models/mlp/infer', { body: BODY });
      expect([reply.status, json(reply).model_name]).toEqual([200, 'mlp']);
    } finally {
      await server.close();
    }
    await expect(lstat(path)).rejects.toThrow(/ENOENT/);
  });

  it('replaces a stale socket left by a process that died', async () => {
    const path = join(await tmpDir(), 'stale.sock');
    await staleSocket(path);
    expect((await lstat(path)).isSocket()).toBe(true);
    const { server, url } = await serve(path);
    try {
      expect((await call(url, '/v2/models/mlp/infer', { body: BODY })).status).toBe(200);
    } finally {
      await server.close();
    }
  });

  it('refuses a socket another server is listening on, and leaves that server serving', async () => {
    const path = join(await tmpDir(), 'busy.sock');
    const first = await serve(path);
    try {
      await expect(new InferenceServer({ repository, socket: path }).listen()).rejects.toMatchObject({
        code: 'INVALID_ARGUMENT',
        message: expect.stringContaining('in use') as unknown,
      });
      expect((await call(first.url, '/v2/models/mlp/infer', { body: BODY })).status).toBe(200);
    } finally {
      await first.server.close();
    }
  });

  it('refuses to replace a file that is not a socket, and leaves it as it was', async () => {
    const path = join(await tmpDir(), 'not-a-socket');
    await writeFile(path, 'precious');
    await expect(new InferenceServer({ repository, socket: path }).listen()).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
    });
    expect(await readFile(path, 'utf8')).toBe('precious');
  });
});
