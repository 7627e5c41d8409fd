import { readFile, rename, rm, writeFile } from 'node:fs/promises';
import * as z from 'zod';
import { fromFsError, isOutpostError, OutpostError } from '../errors.js';
import { backendNameSchema } from '../artifact/manifest.js';

/**
 * The file `outpost tune --out` writes and `outpost serve --tuning` and the agent (`tuning` in its config) read:
 * one chosen configuration per model. A file may hold one choice or an array of them (one per model).
 */
export const tuneChoiceSchema = z.object({
  model: z.string().min(1),
  version: z.string().min(1),
  variant: z.string().min(1),
  backend: backendNameSchema,
  threads: z.number().int().positive(),
  batch: z.object({ maxBatchSize: z.number().int().positive(), maxQueueDelayMs: z.number().nonnegative() }).nullable(),
  measured: z.object({
    p50_ms: z.number(),
    p90_ms: z.number(),
    p99_ms: z.number(),
    mean_ms: z.number(),
    throughput_per_s: z.number(),
    calls_per_s: z.number(),
    load_ms: z.number(),
  }),
  criterion: z.string(),
});

export type TuneChoiceFile = z.infer<typeof tuneChoiceSchema>;

/** Reads a tuning file: choices by model name. A malformed file is INVALID_ARGUMENT naming the problem. */
export async function readTuneChoices(path: string): Promise<ReadonlyMap<string, TuneChoiceFile>> {
  const text = await readFile(path, 'utf8').catch((error: unknown) => {
    throw fromFsError(error, path, 'read');
  });
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new OutpostError('INVALID_ARGUMENT', `tuning file ${path} is not JSON: ${(error as Error).message}`);
  }
  const parsed = z.union([tuneChoiceSchema, z.array(tuneChoiceSchema)]).safeParse(value);
  if (!parsed.success) {
    throw new OutpostError('INVALID_ARGUMENT', `tuning file ${path} is malformed: ${z.prettifyError(parsed.error)}`);
  }
  const choices = Array.isArray(parsed.data) ? parsed.data : [parsed.data];
  return new Map(choices.map((c) => [c.model, c]));
}

/**
 * Writes `choice` into the tuning file at `path`, keeping the other models' choices already there (one file can
 * serve a device's every model); a file holding only this model's choice stays a single object. Validated before
 * writing, and written atomically (temp file + rename), so a reader never sees half a file. An existing file that
 * is not a tuning file is refused, never overwritten.
 */
export async function writeTuneChoice(path: string, choice: TuneChoiceFile): Promise<void> {
  const parsed = tuneChoiceSchema.safeParse(choice);
  if (!parsed.success) {
    throw new OutpostError('INTERNAL', `tune produced an invalid choice: ${z.prettifyError(parsed.error)}`);
  }
  let existing: ReadonlyMap<string, TuneChoiceFile> = new Map();
  try {
    existing = await readTuneChoices(path);
  } catch (error) {
    if (!isOutpostError(error, 'FILE_NOT_FOUND')) throw error;
  }
  const merged = new Map(existing);
  merged.set(choice.model, parsed.data);
  const value = merged.size === 1 ? parsed.data : [...merged.values()];
  const temp = `${path}.${process.pid}.tmp`;
  try {
    await writeFile(temp, `${JSON.stringify(value, null, 2)}\n`);
    await rename(temp, path);
  } catch (error) {
    await rm(temp, { force: true });
    throw fromFsError(error, path, 'write');
  }
}

/**
 * What a tuning choice sets when `version` of its model loads: the thread count always (it was measured on this
 * device), the variant and backend only for the version that was tuned (another version's variants may differ).
 */
export function tunedLoadOptions(
  choice: TuneChoiceFile,
  version: string,
): { threads: number; variant?: string; backend?: TuneChoiceFile['backend'] } {
  return choice.version === version
    ? { threads: choice.threads, variant: choice.variant, backend: choice.backend }
    : { threads: choice.threads };
}
