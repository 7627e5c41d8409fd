import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { expect, vi } from 'vitest';
import { cliEntry } from './cli-entry.js';
import { ROOT } from './models.js';

/** The JSON lines of an `outpost batch` output file, parsed (the caller names their shape). */
export async function batchLines<T>(path: string): Promise<T[]> {
  return (await readFile(path, 'utf8'))
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as T);
}

/**
 * Runs `outpost batch <args> -o <out>` in a child process (cli-entry.ts) and SIGKILLs it once `out` holds `lines`
 * lines (a stalled input — a FIFO nobody writes — keeps it from going further); resolves to the signal it died of.
 */
export async function batchKilledAt(
  args: readonly string[],
  out: string,
  lines: number,
  timeoutMs: number,
): Promise<NodeJS.Signals | null> {
  const child = spawn(process.execPath, [...cliEntry(), ...args, '-o', out], {
    cwd: ROOT,
    stdio: 'ignore',
  });
  const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_code, signal) => resolve(signal)));
  try {
    await vi.waitFor(async () => expect((await batchLines(out).catch(() => [])).length).toBe(lines), {
      timeout: timeoutMs,
      interval: 50,
    });
  } finally {
    child.kill('SIGKILL');
  }
  return exited;
}
