import { InvalidArgumentError } from 'commander';
import { OutpostError } from '../runtime/errors.js';
import type { Model } from '../runtime/model/index.js';
import type { Pipeline } from '../runtime/pipeline/index.js';
import { CaptureWriter, readCaptureKey, type StaticPipelines, type StaticRepository } from '../runtime/server/index.js';

/**
 * `outpost serve`'s traffic flags, for models and pipelines alike (docs/serving-operations.md):
 * `--weight name@version=w` (a canary: versions of one name share its traffic by weight), `--shadow
 * name@version=percent` (that artifact is mirrored, never answers unnamed calls), and `--capture <dir>` (data
 * capture of production calls: for a pipeline its input and final outputs).
 */

/** `name@version=number`, repeatable: a commander option parser that collects into a map keyed `name@version`. */
export function parseVersionValue(what: string, max?: number) {
  return (value: string, previous: ReadonlyMap<string, number> = new Map()): Map<string, number> => {
    const match = /^([^@=\s]+@[^=\s]+)=(\d+(?:\.\d+)?)$/.exec(value);
    const number = Number(match?.[2]);
    if (match === null || !Number.isFinite(number) || (max !== undefined && number > max)) {
      throw new InvalidArgumentError(`"${value}" is not name@version=${what}${max === undefined ? '' : ` (0–${max})`}`);
    }
    return new Map([...previous, [match[1] as string, number]]);
  };
}

export interface TrafficFlags {
  weight?: ReadonlyMap<string, number>;
  shadow?: ReadonlyMap<string, number>;
}

const idOf = (x: { name: string; version: string }) => `${x.name}@${x.version}`;

/**
 * Places each loaded model and pipeline: production with its weight (default 1), or shadow of its name when
 * `--shadow` names it (added after the production versions, which it needs). A flag naming nothing loaded is an
 * error, not a silent no-op.
 */
export async function placeServed(
  flags: TrafficFlags,
  models: readonly Model[],
  pipelines: readonly Pipeline[],
  into: { repository: StaticRepository; pipelines: StaticPipelines },
): Promise<void> {
  const weights = flags.weight ?? new Map<string, number>();
  const shadows = flags.shadow ?? new Map<string, number>();
  const loaded = new Set([...models, ...pipelines].map(idOf));
  for (const id of [...weights.keys(), ...shadows.keys()]) {
    if (!loaded.has(id)) {
      throw new OutpostError('INVALID_ARGUMENT', `--weight/--shadow ${id}: no such artifact is served here`, {
        details: { served: [...loaded] },
      });
    }
    if (weights.has(id) && shadows.has(id))
      throw new OutpostError('INVALID_ARGUMENT', `${id} is given both a --weight and --shadow`);
  }
  for (const m of models) if (!shadows.has(idOf(m))) await into.repository.add(m, weights.get(idOf(m)) ?? 1);
  for (const p of pipelines) if (!shadows.has(idOf(p))) into.pipelines.add(p, weights.get(idOf(p)) ?? 1);
  const noProduction = (id: string) =>
    new OutpostError('INVALID_ARGUMENT', `--shadow ${id}: no production version of its name is served to shadow`);
  for (const m of models) {
    const percent = shadows.get(idOf(m));
    if (percent === undefined) continue;
    const service = into.repository.service(m.name);
    if (service === undefined) throw noProduction(idOf(m));
    await service.setShadow(m, percent);
  }
  for (const p of pipelines) {
    const percent = shadows.get(idOf(p));
    if (percent === undefined) continue;
    if (into.pipelines.get(p.name) === undefined) throw noProduction(idOf(p));
    into.pipelines.addShadow(p, percent);
  }
}

export interface CaptureFlags {
  capture?: string;
  capturePercent: number;
  captureKey?: string;
}

export const SERVE_CAPTURE_DEFAULTS = Object.freeze({
  samplePercent: 100, // percent: asking for a capture directory asks for the calls
  maxFileBytes: 1024 * 1024, // bytes per file before it is sealed (the agent's default)
  maxTotalBytes: 64 * 1024 * 1024, // bytes in the directory; oldest files deleted beyond
});

/** The data-capture writer `--capture <dir>` asks for (opened), or undefined. */
export async function captureWriter(flags: CaptureFlags): Promise<CaptureWriter | undefined> {
  if (flags.capture === undefined) return undefined;
  const writer = new CaptureWriter({
    dir: flags.capture,
    samplePercent: flags.capturePercent,
    maxFileBytes: SERVE_CAPTURE_DEFAULTS.maxFileBytes,
    maxTotalBytes: SERVE_CAPTURE_DEFAULTS.maxTotalBytes,
    tensors: 'inline',
    ...(flags.captureKey === undefined ? {} : { encryptionKey: await readCaptureKey(flags.captureKey) }),
  });
  await writer.open();
  return writer;
}
