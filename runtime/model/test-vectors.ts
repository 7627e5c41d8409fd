import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { OutpostError } from '../errors.js';
import { decodeNpy } from '../tensor/npy.js';
import type { TensorLike } from '../tensor/tensor.js';
import type { Model } from './model.js';

export interface TestVectorCase {
  readonly id: string;
  readonly inputs: Record<string, TensorLike>;
  readonly expected: Record<string, TensorLike>;
  /** Output name → flat indices of the elements `expected` holds (a sampled output); absent: the whole output. */
  readonly elements: Record<string, Uint32Array>;
}

async function readTensors(dir: string, files: Readonly<Record<string, string>>): Promise<Record<string, TensorLike>> {
  const tensors: Record<string, TensorLike> = {};
  for (const [name, file] of Object.entries(files)) {
    const npy = decodeNpy(await readFile(join(dir, file)), file);
    tensors[name] = { data: npy.data, dims: npy.shape, type: npy.dtype };
  }
  return tensors;
}

/** The artifact's recorded test vectors (inputs and the original model's outputs), read from the verified directory. */
export async function readTestVectors(model: Model, limit = Infinity): Promise<TestVectorCase[]> {
  const vectors = model.manifest.testVectors;
  if (vectors === undefined || model.artifactDir === undefined) return [];
  const dir = model.artifactDir;
  const cases: TestVectorCase[] = [];
  for (const c of vectors.cases.slice(0, limit)) {
    const elements: Record<string, Uint32Array> = {};
    for (const [name, t] of Object.entries(await readTensors(dir, c.elements ?? {}))) {
      if (!(t.data instanceof Uint32Array))
        throw new OutpostError('INTERNAL', `test vector ${c.id}: elements of ${name} are not uint32`);
      elements[name] = t.data;
    }
    cases.push({
      id: c.id,
      inputs: await readTensors(dir, c.inputs),
      expected: await readTensors(dir, c.outputs),
      elements,
    });
  }
  if (cases.length === 0 && vectors.cases.length > 0) throw new OutpostError('INTERNAL', 'test vectors unreadable');
  return cases;
}
