import { writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAgent, type AgentProcess } from '../helpers/agent.js';
import { runCli } from '../helpers/cli.js';
import { suiteTmpDir } from '../helpers/tmp.js';

const TOKEN = 'device-local-secret';

let dir: string;
let dispose: () => Promise<void>;
let agent: AgentProcess;
let socket: string;

beforeAll(async () => {
  ({ dir, dispose } = await suiteTmpDir());
  socket = join(dir, 'outpost.sock');
  const tokenFile = join(dir, 'token');
  await writeFile(tokenFile, `${TOKEN}\n`, { mode: 0o600 });
  const config = join(dir, 'agent.json');
  // No broker: the agent serves offline, on a unix socket, behind a token.
  await writeFile(
    config,
    JSON.stringify({ thing: 'sock-1', http: { socket, tokenFile }, capture: { samplePercent: 10, upload: false } }),
  );
  agent = startAgent(['--config', config], join(dir, 'data'));
}, 60_000);

afterAll(async () => {
  await agent.stop();
  await dispose();
});

function get(path: string, token?: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(
      { socketPath: socket, path, headers: token === undefined ? {} : { authorization: `Bearer ${token}` } },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

describe("the agent's local endpoint, from its config", () => {
  it('listens on the configured unix socket, with the token from its file on every route but health', async () => {
    expect(await agent.http()).toBe(`unix:${socket}`);
    expect(await get('/v2/health/live')).toBe(200);
    expect(await get('/metrics')).toBe(401);
    expect(await get('/metrics', 'wrong')).toBe(401);
    expect(await get('/metrics', TOKEN)).toBe(200);
    expect(await get('/v2', TOKEN)).toBe(200);
  });

  it('shows where it serves and its data capture in `agent status`', async () => {
    const { stdout, code, stderr } = await runCli(['agent', 'status', '--data-dir', agent.dataDir]);
    expect(code, stderr).toBe(0);
    expect(stdout).toContain(`serving unix:${socket}`);
    expect(stdout).toMatch(/^capture: 0 of 0 sampled calls written, 0 dropped, 0 B on disk$/m);
  });
});
