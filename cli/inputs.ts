import { extname } from 'node:path';
import { OutpostError } from '../runtime/errors.js';
import type { Model, Feeds } from '../runtime/model/index.js';
import { readBytes, readTensorFile, type FeedMap } from '../runtime/tensor/index.js';
import { guessImagePreprocess, imageToTensor, IMAGE_EXTENSIONS } from '../runtime/pipeline/index.js';

/**
 * `--input` values → feeds. Each value is `file` or `name=file`: `.json`/`.npy` tensors (see `readTensorFile`), or an
 * image pre-processed by the artifact's pipeline (or a guess from an image-shaped input).
 */
export async function readInputs(
  values: readonly string[],
  model: Model,
  shapes: Readonly<Record<string, readonly number[]>>,
): Promise<Feeds> {
  const feeds: FeedMap = {};
  for (const value of values) {
    const match = /^([^=]+)=(.+)$/.exec(value);
    const named = match !== null && model.inputs.some((i) => i.name === match[1]);
    const name = named ? match[1] : undefined;
    const path = named ? (match[2] as string) : value;
    const ext = extname(path).toLowerCase();
    if (IMAGE_EXTENSIONS.has(ext)) {
      const n = name ?? model.manifest.pipeline.preprocess?.input ?? model.inputs[0]?.name ?? '';
      const input = model.inputs.find((i) => i.name === n);
      const spec =
        model.manifest.pipeline.preprocess ?? (input === undefined ? undefined : guessImagePreprocess(input));
      if (spec === undefined) {
        throw new OutpostError(
          'INVALID_ARGUMENT',
          `${path}: the model's input "${n}" does not look like an image and the artifact declares no pre-processing`,
        );
      }
      feeds[n] = await imageToTensor(await readBytes(path), spec);
    } else if (ext === '.json' || ext === '.npy') {
      Object.assign(feeds, await readTensorFile(path, model.inputs, { name, shapes }));
    } else {
      throw new OutpostError(
        'INVALID_ARGUMENT',
        `${path}: unknown input format "${ext}"; use .json, .npy or an image (${[...IMAGE_EXTENSIONS].join(' ')})`,
      );
    }
  }
  return feeds;
}
