import { readFile } from 'node:fs/promises';
import { extname } from 'node:path';
import { OutpostError, fromFsError, messageOf } from '../runtime/errors.js';
import type { Model, Feeds } from '../runtime/model/model.js';
import { decodeNpy } from '../runtime/tensor/npy.js';
import { tensorFromJson } from '../runtime/tensor/json.js';
import type { TensorLike } from '../runtime/tensor/tensor.js';
import { guessImagePreprocess, imageToTensor } from '../runtime/pipeline/image.js';

const IMAGE_EXTENSIONS: ReadonlySet<string> = new Set([
  '.jpg',
  '.jpeg',
  '.png',
  '.webp',
  '.gif',
  '.tif',
  '.tiff',
  '.avif',
]);

async function read(path: string): Promise<Buffer> {
  return readFile(path).catch((error: unknown) => {
    throw fromFsError(error, path, 'read');
  });
}

function only(model: Model, path: string): string {
  const [first, ...rest] = model.inputs;
  if (first === undefined || rest.length > 0) {
    throw new OutpostError(
      'INVALID_ARGUMENT',
      `${path} holds one tensor but the model has inputs ${model.inputs.map((i) => i.name).join(', ')}; pass --input name=file for each`,
    );
  }
  return first.name;
}

function reshape(tensor: TensorLike, shape: readonly number[] | undefined): TensorLike {
  return shape === undefined || tensor.dims.length === shape.length ? tensor : { ...tensor, dims: shape };
}

async function fromJsonFile(
  path: string,
  model: Model,
  shapes: Readonly<Record<string, readonly number[]>>,
  name?: string,
): Promise<Record<string, TensorLike>> {
  let value: unknown;
  try {
    value = JSON.parse((await read(path)).toString('utf8'));
  } catch (error) {
    if (error instanceof OutpostError) throw error;
    throw new OutpostError('INPUT_INVALID', `${path}: not valid JSON: ${messageOf(error)}`, { cause: error });
  }
  const dtypeOf = (n: string) => model.inputs.find((i) => i.name === n)?.dtype;
  const one = (n: string, v: unknown) => reshape(tensorFromJson(v, `${path} (${n})`, dtypeOf(n)), shapes[n]);
  if (name !== undefined) return { [name]: one(name, value) };
  // Open Inference Protocol request body: { "inputs": [ { name, shape, datatype, data } ] }
  if (typeof value === 'object' && value !== null && 'inputs' in value && Array.isArray(value.inputs)) {
    const feeds: Record<string, TensorLike> = {};
    for (const input of value.inputs as unknown[]) {
      const n = typeof input === 'object' && input !== null && 'name' in input ? input.name : undefined;
      if (typeof n !== 'string')
        throw new OutpostError('INPUT_INVALID', `${path}: every entry of "inputs" needs a "name"`);
      feeds[n] = one(n, input);
    }
    return feeds;
  }
  if (Array.isArray(value) || (typeof value === 'object' && value !== null && 'data' in value)) {
    const n = only(model, path);
    return { [n]: one(n, value) };
  }
  if (typeof value === 'object' && value !== null) {
    return Object.fromEntries(Object.entries(value).map(([n, v]) => [n, one(n, v)]));
  }
  throw new OutpostError('INPUT_INVALID', `${path}: expected a tensor, { name: tensor, … } or { "inputs": [ … ] }`);
}

/**
 * `--input` values → feeds. Each value is `file` or `name=file`; `.json` (one tensor, a name→tensor map, or an Open
 * Inference Protocol request), `.npy`, or an image pre-processed by the artifact's pipeline (or a guess from an
 * image-shaped input).
 */
export async function readInputs(
  values: readonly string[],
  model: Model,
  shapes: Readonly<Record<string, readonly number[]>>,
): Promise<Feeds> {
  const feeds: Record<string, TensorLike> = {};
  for (const value of values) {
    const match = /^([^=]+)=(.+)$/.exec(value);
    const named = match !== null && model.inputs.some((i) => i.name === match[1]);
    const name = named ? match[1] : undefined;
    const path = named ? (match[2] as string) : value;
    const ext = extname(path).toLowerCase();
    if (ext === '.json') {
      Object.assign(feeds, await fromJsonFile(path, model, shapes, name));
    } else if (ext === '.npy') {
      const npy = decodeNpy(await read(path), path);
      const n = name ?? only(model, path);
      feeds[n] = reshape({ data: npy.data, dims: npy.shape, type: npy.dtype }, shapes[n]);
    } else if (IMAGE_EXTENSIONS.has(ext)) {
      const n = name ?? model.manifest.pipeline.preprocess?.input ?? only(model, path);
      const input = model.inputs.find((i) => i.name === n);
      const spec =
        model.manifest.pipeline.preprocess ?? (input === undefined ? undefined : guessImagePreprocess(input));
      if (spec === undefined) {
        throw new OutpostError(
          'INVALID_ARGUMENT',
          `${path}: the model's input "${n}" does not look like an image and the artifact declares no pre-processing`,
        );
      }
      feeds[n] = await imageToTensor(await read(path), spec);
    } else {
      throw new OutpostError(
        'INVALID_ARGUMENT',
        `${path}: unknown input format "${ext}"; use .json, .npy or an image (${[...IMAGE_EXTENSIONS].join(' ')})`,
      );
    }
  }
  return feeds;
}
