import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { OutpostError } from '../../runtime/errors.js';
import type { Feeds } from '../../runtime/model/index.js';

/**
 * The evaluator process seen from outside (evaluator.ts drives it): its budget, where its entry file is in a
 * source tree or a build, how its memory is read, and how a run is named when it is killed.
 */
export interface RunBudget {
  /** Wall time one run (or one session load) may take. */
  readonly seconds: number;
  /** Resident memory the evaluator process may reach. */
  readonly memoryBytes: number;
}

export const RUN_BUDGET_DEFAULTS = Object.freeze({
  seconds: 60, // s per run; the slowest real model here (PaddleOCR det at 640², unoptimised calibration) takes ~1 s
  memoryShare: 0.5, // of physical memory, for the evaluator process
});

export function defaultRunBudget(): RunBudget {
  return {
    seconds: RUN_BUDGET_DEFAULTS.seconds,
    memoryBytes: Math.floor(totalmem() * RUN_BUDGET_DEFAULTS.memoryShare),
  };
}

/** The worker's entry: the .ts beside this file under tsx/vitest, the bundle's own file under dist/. */
export function workerEntry(): { path: string; execArgv: string[] } {
  const here = fileURLToPath(import.meta.url);
  if (here.endsWith('.ts')) {
    const tsx = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;
    return { path: join(dirname(here), 'worker.ts'), execArgv: ['--import', tsx] };
  }
  // tsup puts shared chunks in dist/ and entries below it: dist/compiler/evaluate/worker.js.
  for (let dir = dirname(here), i = 0; i < 4; i++, dir = dirname(dir)) {
    const candidate = join(dir, 'compiler', 'evaluate', 'worker.js');
    if (existsSync(candidate)) return { path: candidate, execArgv: [] };
  }
  throw new OutpostError('INTERNAL', `the evaluator worker is missing from the build (looked above ${here})`);
}

/** "sample 3 (repeats = [12, 9], x [2, 2] float32)": the sample and its small integer inputs' values. */
export function describeSample(index: number, feeds: Feeds | undefined): string {
  if (feeds === undefined) return index < 0 ? 'loading the model' : `sample ${index}`;
  const parts = Object.entries(feeds).map(([name, t]) => {
    const type = t.type ?? 'float32';
    const small = !Array.isArray(t.data) && t.data.length <= 8 && !type.startsWith('float');
    return small
      ? `${name} = [${Array.from(t.data as ArrayLike<number | bigint>, String).join(', ')}]`
      : `${name} [${t.dims.join(', ')}] ${type}`;
  });
  return `sample ${index} (${parts.join(', ')})`;
}

/**
 * The process's peak resident memory (VmHWM, Linux's high-water mark): a spike between two polls still counts, and
 * so does one in a run that ended before the next poll. Undefined where /proc is not there.
 */
export function peakResidentBytes(pid: number, field: 'VmHWM' | 'VmRSS' = 'VmHWM'): number | undefined {
  try {
    const kb = new RegExp(`^${field}:\\s+(\\d+)\\s+kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
    return kb === undefined ? undefined : Number(kb) * 1024;
  } catch {
    return undefined;
  }
}
