import { readFile } from 'node:fs/promises';
import { extname } from 'node:path';
import { OutpostError, fromFsError, messageOf } from '../errors.js';
import type { TensorSpec } from '../artifact/manifest.js';
import { tensorFromJson } from './json.js';
import { decodeNpy } from './npy.js';
import type { TensorLike } from './tensor.js';

export type FeedMap = Record<string, TensorLike>;

export async function readBytes(path: string): Promise<Buffer> {
  return readFile(path).catch((error: unknown) => {
    throw fromFsError(error, path, 'read');
  });
}

function onlyInput(inputs: readonly TensorSpec[], path: string): string {
  const [first, ...rest] = inputs;
  if (first === undefined || rest.length > 0) {
    throw new OutpostError(
      'INVALID_ARGUMENT',
      `${path} holds one tensor but the model has inputs ${inputs.map((i) => i.name).join(', ')}; name the input (name=file) or use a map of name → tensor`,
    );
  }
  return first.name;
}

function reshape(tensor: TensorLike, shape: readonly number[] | undefined): TensorLike {
  return shape === undefined || tensor.dims.length === shape.length ? tensor : { ...tensor, dims: shape };
}

/**
 * Tensors from a `.json` or `.npy` file, for the model inputs `inputs`:
 * - `.npy`: one tensor, for `name` or the model's only input;
 * - `.json`: one tensor (`{ shape, datatype, data }` or a nested array) for `name` or the only input, a map of input
 *   name → tensor, or an Open Inference Protocol request body (`{ "inputs": [{ name, shape, datatype, data }] }`).
 * `shapes` (from `--input-shape`) gives flat data its shape.
 */
export async function readTensorFile(
  path: string,
  inputs: readonly TensorSpec[],
  options: { name?: string; shapes?: Readonly<Record<string, readonly number[]>> } = {},
): Promise<FeedMap> {
  const shapes = options.shapes ?? {};
  const ext = extname(path).toLowerCase();
  if (ext === '.npy') {
    const npy = decodeNpy(await readBytes(path), path);
    const name = options.name ?? onlyInput(inputs, path);
    return { [name]: reshape({ data: npy.data, dims: npy.shape, type: npy.dtype }, shapes[name]) };
  }
  if (ext !== '.json') throw new OutpostError('INVALID_ARGUMENT', `${path}: expected a .json or .npy tensor file`);
  let value: unknown;
  try {
    value = JSON.parse((await readBytes(path)).toString('utf8'));
  } catch (error) {
    if (error instanceof OutpostError) throw error;
    throw new OutpostError('INPUT_INVALID', `${path}: not valid JSON: ${messageOf(error)}`, { cause: error });
  }
  return tensorsFromJson(value, path, inputs, options);
}

/**
 * The tensors of a parsed `.json` input (see readTensorFile) for the model inputs `inputs`; `where` names it in
 * errors. `outpost batch` reads each `.jsonl` line through here.
 */
export function tensorsFromJson(
  value: unknown,
  where: string,
  inputs: readonly TensorSpec[],
  options: { name?: string; shapes?: Readonly<Record<string, readonly number[]>> } = {},
): FeedMap {
  const path = where;
  const shapes = options.shapes ?? {};
  const dtypeOf = (n: string) => inputs.find((i) => i.name === n)?.dtype;
  const one = (n: string, v: unknown) => reshape(tensorFromJson(v, `${path} (${n})`, dtypeOf(n)), shapes[n]);
  if (options.name !== undefined) return { [options.name]: one(options.name, value) };
  if (typeof value === 'object' && value !== null && 'inputs' in value && Array.isArray(value.inputs)) {
    const feeds: FeedMap = {};
    for (const input of value.inputs as unknown[]) {
      const n = typeof input === 'object' && input !== null && 'name' in input ? input.name : undefined;
      if (typeof n !== 'string')
        throw new OutpostError('INPUT_INVALID', `${path}: every entry of "inputs" needs a "name"`);
      feeds[n] = one(n, input);
    }
    return feeds;
  }
  if (Array.isArray(value) || (typeof value === 'object' && value !== null && 'data' in value)) {
    const n = onlyInput(inputs, path);
    return { [n]: one(n, value) };
  }
  if (typeof value === 'object' && value !== null) {
    return Object.fromEntries(Object.entries(value).map(([n, v]) => [n, one(n, v)]));
  }
  throw new OutpostError('INPUT_INVALID', `${path}: expected a tensor, { name: tensor, … } or { "inputs": [ … ] }`);
}
