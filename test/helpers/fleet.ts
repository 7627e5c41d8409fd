import { spawn, type ChildProcess } from 'node:child_process';
import type { DeploymentView, ThingView } from '../../fleet/index.js';
import { cliEntry } from './cli-entry.js';
import { ROOT } from './models.js';

export const FLEET_START_TIMEOUT_MS = 30_000; // ms: tsx transpiles the CLI on first start

export interface FleetProcess {
  readonly child: ChildProcess;
  readonly url: string;
  readonly logs: () => string;
  /** The API, with the token when one was set. */
  api(method: string, path: string, body?: unknown): Promise<{ status: number; body: unknown }>;
  /** A thing's record, undefined while the registry does not know it. */
  thing(name: string): Promise<ThingView | undefined>;
  deployment(id: string): Promise<DeploymentView>;
  kill(): Promise<void>;
  stop(): Promise<number | null>;
}

/** `outpost fleet serve …` as a real child process (cli-entry.ts: the suite's bundle or tsx), killable with SIGKILL. */
export async function startFleet(
  args: readonly string[],
  options: { token?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<FleetProcess> {
  const child = spawn(process.execPath, [...cliEntry(), 'fleet', 'serve', '--http-port', '0', ...args], {
    cwd: ROOT,
    env: { ...process.env, OUTPOST_LOG_LEVEL: 'info', ...options.env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`fleet serve did not start:\n${stderr}`)), FLEET_START_TIMEOUT_MS);
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString('utf8');
      const match = /fleet serving (http:\/\/\S+)/.exec(stderr);
      if (match?.[1] !== undefined) {
        clearTimeout(timer);
        resolve(match[1]);
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`fleet serve exited ${String(code)}:\n${stderr}`));
    });
  });
  const api: FleetProcess['api'] = async (method, path, body) => {
    const response = await fetch(`${url}${path}`, {
      method,
      headers: {
        ...(options.token === undefined ? {} : { authorization: `Bearer ${options.token}` }),
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    return { status: response.status, body: await response.json() };
  };
  return {
    child,
    url,
    logs: () => stderr,
    api,
    async thing(name) {
      const r = await api('GET', `/v1/things/${name}`);
      return r.status === 200 ? (r.body as ThingView) : undefined;
    },
    async deployment(id) {
      const r = await api('GET', `/v1/deployments/${id}`);
      if (r.status !== 200) throw new Error(`deployment ${id}: ${JSON.stringify(r.body)}`);
      return r.body as DeploymentView;
    },
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      return exited;
    },
  };
}
