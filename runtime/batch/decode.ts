import { extname } from 'node:path';
import { OutpostError, messageOf } from '../errors.js';
import type { Feeds, Model } from '../model/model.js';
import { guessImagePreprocess, imageToTensor, IMAGE_EXTENSIONS } from '../pipeline/index.js';
import { readBytes, readTensorFile, tensorsFromJson } from '../tensor/index.js';
import type { BatchItem } from './sources.js';

/** Keys of a `.jsonl` line that name it rather than carry a tensor. */
const LINE_KEYS: ReadonlySet<string> = new Set(['id', 'name', 'parameters']);

/**
 * One batch item → the model's feeds, as `outpost run --input` reads the same file: an image through the artifact's
 * pre-processing (or one guessed from an image-shaped input), a `.npy`/`.json` tensor file, or a `.jsonl` line's
 * request body. Every failure is the item's own typed error (INPUT_INVALID for an undecodable image or bad JSON).
 */
export async function decodeItem(
  item: BatchItem,
  model: Model,
  shapes: Readonly<Record<string, readonly number[]>> = {},
): Promise<Feeds> {
  if (item.kind === 'request') {
    let value: unknown;
    try {
      value = JSON.parse(item.text);
    } catch (error) {
      throw new OutpostError('INPUT_INVALID', `${item.where}: not valid JSON: ${messageOf(error)}`);
    }
    if (typeof value === 'object' && value !== null && !Array.isArray(value) && !('inputs' in value)) {
      value = Object.fromEntries(Object.entries(value).filter(([key]) => !LINE_KEYS.has(key)));
    }
    return tensorsFromJson(value, item.where, model.inputs, { shapes });
  }
  const ext = extname(item.path).toLowerCase();
  if (IMAGE_EXTENSIONS.has(ext)) {
    const spec = model.manifest.pipeline.preprocess;
    const name = spec?.input ?? model.inputs[0]?.name ?? '';
    const input = model.inputs.find((i) => i.name === name);
    const resolved = spec ?? (input === undefined ? undefined : guessImagePreprocess(input));
    if (resolved === undefined) {
      throw new OutpostError(
        'INVALID_ARGUMENT',
        `${item.path}: the model's input "${name}" does not look like an image and the artifact declares no pre-processing`,
      );
    }
    return { [name]: await imageToTensor(await readBytes(item.path), resolved) };
  }
  if (ext === '.json' || ext === '.npy') return await readTensorFile(item.path, model.inputs, { shapes });
  throw new OutpostError(
    'INPUT_INVALID',
    `${item.path}: unknown input format "${ext}"; use .json, .npy or an image (${[...IMAGE_EXTENSIONS].join(' ')})`,
  );
}
