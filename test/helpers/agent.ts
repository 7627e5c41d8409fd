import { spawn, type ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { vi } from 'vitest';
import { cliEntry } from './cli-entry.js';
import { ROOT } from './models.js';

export const AGENT_START_TIMEOUT_MS = 20_000; // ms: tsx transpiles the CLI on first start
export const POLL_MS = 50; // ms

export interface AgentProcess {
  readonly child: ChildProcess;
  readonly dataDir: string;
  /** stderr so far (pino JSON lines), for failure messages. */
  readonly logs: () => string;
  /** The local inference endpoint, once the agent wrote its status. */
  http(): Promise<string>;
  /** SIGKILL, and wait for the process to be gone. */
  kill(): Promise<void>;
  /** SIGTERM (clean stop), and wait. */
  stop(): Promise<void>;
}

/**
 * Runs `outpost agent …` as a real child process (killable with SIGKILL): the suite's bundle of the current source
 * or tsx (cli-entry.ts), or with `built` the bundled CLI in dist/ (what a device runs; benchmarks use it so start-up
 * is not transpilation).
 */
export function startAgent(
  args: readonly string[],
  dataDir: string,
  env: NodeJS.ProcessEnv = {},
  options: { built?: boolean } = {},
): AgentProcess {
  const entry = options.built === true ? [join(ROOT, 'dist', 'cli', 'main.js')] : cliEntry();
  const child = spawn(process.execPath, [...entry, 'agent', '--data-dir', dataDir, ...args], {
    cwd: ROOT,
    env: { ...process.env, OUTPOST_LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString('utf8');
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return {
    child,
    dataDir,
    logs: () => stderr,
    async http() {
      return waitFor(
        async () => {
          if (child.exitCode !== null) throw new Error(`agent exited ${child.exitCode}:\n${stderr}`);
          const status = await readJson(join(dataDir, 'status.json'));
          return status !== undefined && status.pid === child.pid && typeof status.http === 'string'
            ? status.http
            : undefined;
        },
        AGENT_START_TIMEOUT_MS,
        () => `agent did not start:\n${stderr}`,
      );
    },
    async kill() {
      if (child.exitCode === null) child.kill('SIGKILL');
      await exited;
    },
    async stop() {
      if (child.exitCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}

async function readJson(path: string): Promise<Record<string, unknown> | undefined> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}

/** Polls `probe` (`vi.waitFor`) until it returns a value (not undefined) or the time is up. */
export async function waitFor<T>(
  probe: () => T | undefined | Promise<T | undefined>,
  timeoutMs: number,
  why: () => string = () => 'condition',
): Promise<T> {
  return vi.waitFor(
    async () => {
      const value = await probe();
      if (value === undefined) throw new Error(`timed out after ${timeoutMs} ms waiting for ${why()}`);
      return value;
    },
    { timeout: timeoutMs, interval: POLL_MS },
  );
}

/** A deployment's persisted state, as the agent wrote it. */
export async function deploymentState(dataDir: string, jobId: string): Promise<Record<string, unknown> | undefined> {
  return readJson(join(dataDir, 'deployments', `${jobId}.json`));
}
