/**
 * bench/batch.ts's last part: what `outpost batch` does to a server on the same machine. `outpost serve` (standing in
 * for the agent's endpoint: the same server) answers PNG bodies one request at a time from a client in this process,
 * alone, then while `outpost batch` runs over and over at niceness 0, then at its default niceness 10. Phases
 * alternate over the rounds, so drift hits all alike.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { latencyStats } from '../runtime/tuning/stats.js';
import { send, target } from './server/client.js';

const REQUESTS = 200; // per phase and round
const ROUNDS = 2;

export interface AlongsideRow {
  readonly phase: string;
  readonly p50_ms: number;
  readonly p99_ms: number;
  readonly vs_alone_p50: number;
}

function startServe(main: string, artifact: string): Promise<{ child: ChildProcess; url: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [main, 'serve', artifact, '--port', '0'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const url = /listening on (http:\/\/\S+)/.exec(out)?.[1];
      if (url !== undefined) resolve({ child, url });
    });
    child.on('exit', (code) => reject(new Error(`outpost serve exited (${code}): ${out}`)));
  });
}

/** Runs `outpost batch` again and again until `stop` resolves; returns how many runs finished. */
async function batchLoop(main: string, args: readonly string[], stop: Promise<void>): Promise<number> {
  let stopped = false;
  let child: ChildProcess | undefined;
  void stop.then(() => {
    stopped = true;
    child?.kill('SIGKILL');
  });
  let runs = 0;
  while (!stopped) {
    const current = spawn(process.execPath, [main, ...args], { stdio: 'ignore' });
    child = current;
    const code = await new Promise<number | null>((resolve) => current.on('exit', (c) => resolve(c)));
    if (code === 0) runs++;
  }
  return runs;
}

export async function alongside(main: string, artifact: string, inputs: string, dir: string): Promise<AlongsideRow[]> {
  const png = await readFile(join(inputs, 'img0000.png'));
  const { child, url } = await startServe(main, artifact);
  const to = target(url, 1);
  const headers = { 'content-type': 'image/png', 'content-length': png.length };
  const samples: Record<string, number[]> = { alone: [], 'batch --nice 0': [], 'batch --nice 10 (default)': [] };
  const measure = async (into: number[]) => {
    for (let i = 0; i < REQUESTS; i++) {
      const started = performance.now();
      const reply = await send(to, '/v2/models/classifier/infer', png, headers);
      into.push(performance.now() - started);
      if (reply.status !== 200) throw new Error(`serve answered ${reply.status}: ${reply.body.toString()}`);
    }
  };
  try {
    for (let i = 0; i < 20; i++) await send(to, '/v2/models/classifier/infer', png, headers); // warm-up
    for (let round = 0; round < ROUNDS; round++) {
      await measure(samples.alone ?? []);
      for (const nice of ['0', '10']) {
        const out = join(dir, `alongside-${nice}.jsonl`);
        let done = (): void => undefined;
        const stop = new Promise<void>((resolve) => (done = resolve));
        const loop = batchLoop(main, ['batch', artifact, inputs, '-o', out, '--force', '--nice', nice], stop);
        await new Promise((resolve) => setTimeout(resolve, 1500)); // the batch past its start-up, running
        await measure(samples[nice === '0' ? 'batch --nice 0' : 'batch --nice 10 (default)'] ?? []);
        done();
        await loop;
      }
    }
  } finally {
    child.kill('SIGTERM');
    to.agent.destroy();
  }
  const alone = latencyStats(samples.alone ?? []);
  return Object.entries(samples).map(([phase, s]) => {
    const stats = latencyStats(s);
    return { phase, p50_ms: stats.p50, p99_ms: stats.p99, vs_alone_p50: stats.p50 / alone.p50 };
  });
}
