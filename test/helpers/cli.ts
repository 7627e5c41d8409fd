import { execFile } from 'node:child_process';
import { cliEntry } from './cli-entry.js';
import { ROOT } from './models.js';

export interface CliResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `outpost …` as a real child process: the suite's bundle of the current source, or through tsx (cli-entry.ts). */
export function runCli(
  args: readonly string[],
  options: { timeoutMs?: number; env?: NodeJS.ProcessEnv } = {},
): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [...cliEntry(), ...args],
      {
        cwd: ROOT,
        timeout: options.timeoutMs ?? 60_000,
        env: { ...process.env, ...options.env },
        maxBuffer: 16 * 1024 * 1024,
      },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === 'number' ? error.code : 1;
        resolve({ code, stdout, stderr });
      },
    );
  });
}
