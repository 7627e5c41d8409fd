import { spawn } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cliEntry } from '../helpers/cli-entry.js';
import { ROOT } from '../helpers/models.js';
import { tmpDir } from '../helpers/tmp.js';

const DETECTOR = join(ROOT, 'node_modules', '@gutenye', 'ocr-models', 'assets', 'ch_PP-OCRv4_det_infer.onnx');
const STARTED_TIMEOUT_MS = 60_000; // ms for the compile to reach calibration (its evaluator is running then)
const EXIT_TIMEOUT_MS = 15_000; // ms for the interrupted compile to exit

/** Processes still carrying this TMPDIR: the CLI and any evaluator it started (Linux /proc). */
async function processesWith(tmp: string): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const environ = await readFile(`/proc/${entry}/environ`, 'latin1').catch(() => '');
    if (environ.split('\0').includes(`TMPDIR=${tmp}`)) pids.push(Number(entry));
  }
  return pids;
}

async function interrupted(signal: 'SIGINT' | 'SIGTERM') {
  const tmp = await tmpDir();
  const out = join(await tmpDir(), 'artifact');
  const child = spawn(
    process.execPath,
    [
      ...cliEntry(),
      'compile',
      DETECTOR,
      '--target',
      'host',
      '--precision',
      'int8',
      '--input-shape',
      'x=1,3,640,640',
      '-o',
      out,
    ],
    { cwd: ROOT, env: { ...process.env, TMPDIR: tmp }, stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`compile did not reach calibration: ${stderr}`)),
      STARTED_TIMEOUT_MS,
    );
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
      if (stderr.includes('calibrate')) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  const during = (await readdir(tmp)).filter((n) => n.startsWith('outpost-compile-'));
  const live = (await processesWith(tmp)).length;
  child.kill(signal);
  const code = await Promise.race([
    exited,
    new Promise<'hung'>((resolve) => setTimeout(() => resolve('hung'), EXIT_TIMEOUT_MS)),
  ]);
  if (code === 'hung') child.kill('SIGKILL');
  return { code, stderr, during, live, after: await readdir(tmp), left: await processesWith(tmp), out };
}

describe.skipIf(process.platform !== 'linux')('outpost compile, interrupted', () => {
  it.for(['SIGINT', 'SIGTERM'] as const)(
    'on %s removes its outpost-compile-* folder, stops its evaluator and exits 128 + the signal',
    // Room for both waits: with two test files at a time on 2 cores, reaching calibration can take most of a minute.
    { timeout: STARTED_TIMEOUT_MS + EXIT_TIMEOUT_MS + 15_000 },
    async (signal) => {
      const r = await interrupted(signal);
      expect(r.during).toHaveLength(1); // the work directory existed while it ran …
      expect(r.live).toBeGreaterThanOrEqual(2); // … and so did the evaluator beside the CLI
      expect(r.code).toBe(signal === 'SIGINT' ? 130 : 143);
      expect(r.stderr.trim().split('\n').at(-1)).toMatch(
        new RegExp(`^outpost: compile interrupted by ${signal}; its work directory was removed \\[INTERRUPTED\\]$`),
      );
      expect(r.after.filter((n) => n.startsWith('outpost-compile-'))).toEqual([]);
      expect(r.left).toEqual([]);
    },
  );
});
