import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { Agent } from '../../device-agent/agent.js';
import { parseAgentConfig } from '../../device-agent/config.js';
import { logger } from '../../runtime/log.js';
import { startBroker, type TestBroker } from '../helpers/broker.js';
import { suiteTmpDir } from '../helpers/tmp.js';

/**
 * `Agent.stop()` mid-backoff: every retry's sleep honours the agent's stop signal (runtime/retry.ts), so stopping
 * never waits a backoff out. The backoffs here are an hour: stop() returning at all proves it did not sit one out.
 * The broker is real (no IoT Jobs service on it, so start-next and UpdateJobExecution go unanswered).
 */
const HOUR = 3_600_000; // ms
const LONG = Object.freeze({ minMs: HOUR, maxMs: HOUR, jitter: 0 });
const STOP_TEST_TIMEOUT_MS = 30_000; // ms: a stop that waited a backoff would fail this test by timing out

let dir: string;
let dispose: () => Promise<void>;
let broker: TestBroker;
let count = 0;

beforeAll(async () => {
  ({ dir, dispose } = await suiteTmpDir());
  broker = await startBroker();
}, 60_000);

afterEach(() => {
  vi.restoreAllMocks();
});

afterAll(async () => {
  await broker.stop();
  await dispose();
});

function agentFor(extra: Record<string, unknown>, dataDir: string): Agent {
  const config = parseAgentConfig({
    thing: `stop-${++count}`,
    dataDir,
    allowUnsigned: true,
    broker: { url: broker.urls.tcp },
    http: { port: 0 },
    jobsRequestTimeoutMs: 200,
    ...extra,
  });
  return new Agent({ config });
}

/** Resolves with the log fields when `component` logs `message` at `level` (observing the real code path). */
function logged(component: string, level: 'warn' | 'debug', message: RegExp): Promise<Record<string, unknown>> {
  const log = logger(component);
  return new Promise((resolve) => {
    const original = log[level].bind(log);
    vi.spyOn(log, level).mockImplementation((fields: unknown, msg?: unknown) => {
      if (typeof msg === 'string' && message.test(msg)) resolve(fields as Record<string, unknown>);
      original(fields as object, msg as string);
    });
  });
}

async function stopTimed(agent: Agent): Promise<number> {
  const started = performance.now();
  await agent.stop();
  return performance.now() - started;
}

describe('Agent.stop() mid-backoff', () => {
  it(
    'returns while start-next backs off for an hour (no jobs service answers)',
    async () => {
      const waiting = logged('agent.jobs', 'warn', /start-next unanswered/);
      const agent = agentFor({ retry: { startNext: LONG } }, join(dir, `d${count}`));
      await agent.start();
      const fields = await waiting;
      expect(fields.delayMs).toBe(HOUR);
      expect(await stopTimed(agent)).toBeLessThan(HOUR); // returned before the backoff would have ended
    },
    STOP_TEST_TIMEOUT_MS,
  );

  it(
    'returns while the final report backs off for an hour (UpdateJobExecution unanswered)',
    async () => {
      const dataDir = join(dir, 'report');
      // A deployment that reached its report step before a restart: the agent resumes it at once.
      await mkdir(join(dataDir, 'deployments'), { recursive: true });
      const now = new Date().toISOString();
      await writeFile(
        join(dataDir, 'deployments', 'job-1.json'),
        JSON.stringify({
          jobId: 'job-1',
          model: 'cnn',
          version: '1.0.0',
          step: 'reporting',
          document: null,
          versionNumber: 2,
          bytesTotal: 0,
          bytesReceived: 0,
          bytesFetched: 0,
          outcome: { status: 'FAILED', code: 'HOOK_FAILED', message: 'validating: hook failed' },
          startedAt: now,
          updatedAt: now,
          attempts: 1,
        }),
      );
      const waiting = logged('agent.deployment', 'debug', /report not delivered/);
      const agent = agentFor({ retry: { report: LONG, startNext: LONG } }, dataDir);
      await agent.start();
      const fields = await waiting;
      expect(fields).toMatchObject({ jobId: 'job-1', attempt: 1, delayMs: HOUR });
      expect(await stopTimed(agent)).toBeLessThan(HOUR);
      // Stopped, not finished: the record still waits at its report step, to be resumed by the next start.
      const status = await agent.status();
      expect(status.deployments.find((d) => d.jobId === 'job-1')?.state).not.toBe('done');
    },
    STOP_TEST_TIMEOUT_MS,
  );
});
