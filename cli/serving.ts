import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { tunedLoadOptions, type TuneChoiceFile } from '../runtime/tuning/index.js';
import { OutpostError } from '../runtime/errors.js';
import { loadModel, type LoadOptions, type Model } from '../runtime/model/index.js';
import {
  readTokenFile,
  DEFAULT_BATCHING,
  type BatchObserver,
  DEFAULT_LIMITS,
  type SchedulerFactory,
  plannedScheduler,
} from '../runtime/server/index.js';

/**
 * What `outpost serve` loads and how each model takes requests: the artifacts given on the command line, shaped by
 * the global flags and, for the models it names, by an `outpost tune` file.
 */

export type Tuning = ReadonlyMap<string, TuneChoiceFile>;

/** How requests reach every loaded version, before a tuning file says otherwise for a model. */
export interface SchedulingFlags {
  readonly concurrency?: number;
  readonly maxQueue?: number;
  /** Batching is on for every batchable model when this is set. */
  readonly maxBatchSize?: number;
  readonly maxQueueDelayMs?: number; // ms
}

/** The name and version an artifact directory declares, read to pick its tuned load options before loading it. */
async function declared(path: string): Promise<{ name: string; version: string } | undefined> {
  const isDirectory = await stat(path).then(
    (info) => info.isDirectory(),
    () => false,
  );
  if (!isDirectory) return undefined;
  try {
    // Unverified: only used to choose options; loadModel verifies the manifest before anything runs.
    const manifest = JSON.parse(await readFile(join(path, 'manifest.json'), 'utf8')) as unknown;
    const { name, version } = (manifest ?? {}) as { name?: unknown; version?: unknown };
    return typeof name === 'string' && typeof version === 'string' ? { name, version } : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Load options for one model: a tuned model gets its tuned thread count, and for the version that was tuned its
 * variant and backend too (as the agent does); the flags apply to every other model.
 */
function tunedOptions(base: LoadOptions, tuning: Tuning | undefined, id: { name: string; version: string }) {
  const choice = tuning?.get(id.name);
  return choice === undefined ? base : { ...base, ...tunedLoadOptions(choice, id.version) };
}

const sameLoad = (a: LoadOptions, b: LoadOptions) =>
  a.variant === b.variant && a.backend === b.backend && a.threads === b.threads;

/**
 * Loads one artifact (directory, .tar.gz) or model (.onnx/.ort) as tuned. An archive or a bare model is read
 * before its name is known: when the tuning file names it with other options, it is loaded again with those.
 * With signatures required (`base.requireSignature`), loadModel refuses a bare model, which cannot carry one.
 */
export async function loadServed(path: string, base: LoadOptions, tuning: Tuning | undefined): Promise<Model> {
  const id = await declared(path);
  const first = id === undefined ? base : tunedOptions(base, tuning, id);
  let model = await loadModel(path, first);
  const wanted = tunedOptions(base, tuning, model);
  if (!sameLoad(first, wanted)) {
    await model.release();
    model = await loadModel(path, wanted);
  }
  return model;
}

/** Loads every path; if one fails, those already loaded are released before the error is thrown. */
export async function loadAll(
  paths: readonly string[],
  base: LoadOptions,
  tuning: Tuning | undefined,
): Promise<Model[]> {
  const models: Model[] = [];
  try {
    for (const path of paths) models.push(await loadServed(path, base, tuning));
  } catch (error) {
    await Promise.allSettled(models.map((m) => m.release()));
    throw error;
  }
  return models;
}

/**
 * One scheduler factory for the whole repository that decides per model: a tuned model batches as its tuning file
 * says (`batch: null`: not at all), the others batch when --max-batch-size is set and run directly otherwise.
 */
export function schedulerFor(
  flags: SchedulingFlags,
  tuning: Tuning | undefined,
  observer: BatchObserver,
): SchedulerFactory {
  const maxQueue = flags.maxQueue ?? DEFAULT_LIMITS.maxQueue;
  return plannedScheduler({
    direct: { concurrency: flags.concurrency ?? DEFAULT_LIMITS.concurrency, maxQueue },
    batchConcurrency: flags.concurrency ?? DEFAULT_BATCHING.concurrency,
    ...(flags.maxBatchSize === undefined
      ? {}
      : {
          batching: {
            maxBatchSize: flags.maxBatchSize,
            maxQueueDelayMs: flags.maxQueueDelayMs ?? DEFAULT_BATCHING.maxQueueDelayMs,
          },
        }),
    perModel: new Map([...(tuning ?? [])].map(([name, choice]) => [name, choice.batch])),
    observer,
  });
}

/** The bearer token: --token, else the first line of --token-file, else $OUTPOST_TOKEN; none means no auth. */
export async function readToken(flags: { token?: string; tokenFile?: string }): Promise<string | undefined> {
  if (flags.token !== undefined && flags.tokenFile !== undefined) {
    throw new OutpostError('INVALID_ARGUMENT', '--token and --token-file are alternatives; give one');
  }
  if (flags.token !== undefined) return flags.token;
  if (flags.tokenFile !== undefined) return await readTokenFile(flags.tokenFile);
  const env = process.env.OUTPOST_TOKEN;
  return env === undefined || env === '' ? undefined : env;
}
