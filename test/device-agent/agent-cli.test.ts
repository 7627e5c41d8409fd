import { spawn } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startAgent, waitFor, type AgentProcess } from '../helpers/agent.js';
import { startBroker, type TestBroker } from '../helpers/broker.js';
import { runCli } from '../helpers/cli.js';
import { suiteTmpDir } from '../helpers/tmp.js';

/** `outpost agent` as a user meets it: what it logs, and what `agent status` says once it is gone. */
const LOG_WAIT_MS = 20_000; // ms for log lines to appear

let dir: string;
let dispose: () => Promise<void>;
let broker: TestBroker;
const agents: AgentProcess[] = [];

beforeAll(async () => {
  ({ dir, dispose } = await suiteTmpDir());
  broker = await startBroker();
}, 60_000);

afterEach(async () => {
  for (const a of agents.splice(0)) await a.stop();
});

afterAll(async () => {
  await broker.stop();
  await dispose();
});

interface LogLine {
  level: number;
  msg: string;
}

const PINO = Object.freeze({ debug: 20, info: 30, warn: 40 });

function lines(agent: AgentProcess): LogLine[] {
  return agent
    .logs()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as LogLine);
}

describe('outpost agent logs', () => {
  it('says "agent started" at info, which is its default level', async () => {
    // No OUTPOST_LOG_LEVEL (the harness sets one): the agent's own default applies.
    const agent = startAgent(['--thing', 'log-1', '--http-port', '0'], join(dir, 'log-1'), { OUTPOST_LOG_LEVEL: '' });
    agents.push(agent);
    await agent.http();
    const started = await waitFor(() => lines(agent).find((l) => l.msg === 'agent started'), LOG_WAIT_MS);
    expect(started.level).toBe(PINO.info);
  });

  it('on a broker without an IoT Jobs service, says once at warn that start-next goes unanswered, then at debug', async () => {
    const config = join(dir, 'plain.json');
    await writeFile(
      config,
      JSON.stringify({
        thing: 'plain-1',
        allowUnsigned: true,
        jobsRequestTimeoutMs: 200,
        retry: { startNext: { minMs: 50, maxMs: 100 } },
      }),
    );
    const args = ['--config', config, '--broker', broker.urls.tcp, '--http-port', '0', '--verbose'];
    const agent = startAgent(args, join(dir, 'plain-1'));
    agents.push(agent);
    await agent.http();
    const again = await waitFor(() => {
      const later = lines(agent).filter((l) => l.msg === 'start-next unanswered; asking again');
      return later.length >= 3 ? later : undefined;
    }, LOG_WAIT_MS);
    expect(again.every((l) => l.level === PINO.debug)).toBe(true);
    const warned = lines(agent).filter((l) => l.msg.startsWith('start-next unanswered (no IoT Jobs service'));
    expect(warned.map((l) => l.level)).toEqual([PINO.warn]);
  });
});

describe('outpost agent status', () => {
  it('of a dead agent says it is not running, and names no endpoint as served', async () => {
    const dataDir = join(dir, 'dead');
    await mkdir(dataDir, { recursive: true });
    const pid = await deadPid();
    const now = new Date().toISOString();
    await writeFile(
      join(dataDir, 'status.json'),
      JSON.stringify({
        thing: 'dead-1',
        connected: true,
        pid,
        startedAt: now,
        updatedAt: now,
        uptimeSeconds: 5,
        http: 'http://127.0.0.1:8080',
        active: [],
        shadows: [],
        guardrails: [],
        deployments: [],
        disk: { path: dataDir, freeBytes: 1, totalBytes: 2 },
        memory: { rssBytes: 1, systemFreeBytes: 1, systemTotalBytes: 2 },
        spool: { entries: 0, dropped: 0 },
      }),
    );
    const human = await runCli(['agent', 'status', '--data-dir', dataDir]);
    expect(human.code, human.stderr).toBe(0);
    const first = human.stdout.split('\n')[0] ?? '';
    expect(first).toContain('agent not running');
    expect(first).toContain(`pid ${pid}`);
    expect(human.stdout).not.toContain('serving');
    const json = await runCli(['agent', 'status', '--data-dir', dataDir, '--json']);
    const status = JSON.parse(json.stdout) as { running: boolean; connected: boolean; http?: string };
    expect(status).toMatchObject({ running: false, connected: false });
    expect(status.http).toBeUndefined();
  });
});

/** The pid of a process that has exited (and was reaped): what status.json holds after the agent died. */
function deadPid(): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['-e', '0'], { stdio: 'ignore' });
    child.once('error', reject);
    child.once('exit', () => {
      if (child.pid === undefined) reject(new Error('no pid'));
      else resolve(child.pid);
    });
  });
}
