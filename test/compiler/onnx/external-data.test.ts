import { mkdir, readFile, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  encodeModel,
  externalDataInfo,
  loadModel,
  modelTensors,
  readTensor,
  readTensorBytes,
  saveModel,
  tensorBytes,
  tensorToArray,
  usesExternalData,
  type ModelProto,
  type OnnxModel,
  type TensorProto,
} from '../../../compiler/onnx/index.js';
import { isOutpostError } from '../../../runtime/errors.js';
import { tmpDir } from '../../helpers/tmp.js';
import { bitsOf, mlpModel, runOrt, type Feeds } from './helpers.js';

const MOVED = ['w1', 'b1', 'w2', 'const']; // ≥ 1024 bytes: the three initializers and the Constant's value

function tensorsByName(model: ModelProto): Map<string, TensorProto> {
  return new Map([...modelTensors(model)].map((site) => [site.tensor.name, site.tensor]));
}

async function expectSameOutputs(a: string | Uint8Array, b: string | Uint8Array, feeds: () => Feeds): Promise<void> {
  const expected = await runOrt(a, feeds());
  const actual = await runOrt(b, feeds());
  for (const [name, data] of Object.entries(expected)) {
    expect(bitsOf(actual[name] ?? []).equals(bitsOf(data)), `output ${name}`).toBe(true);
  }
}

async function expectValuesOf(model: OnnxModel, reference: ModelProto): Promise<void> {
  const expected = tensorsByName(reference);
  for (const { tensor } of modelTensors(model.proto)) {
    const original = expected.get(tensor.name);
    expect(original, tensor.name).toBeDefined();
    expect(await readTensor(model, tensor)).toEqual(tensorToArray(original as TensorProto));
  }
}

describe('external data', () => {
  it('moves tensors at or above the threshold into a page-aligned data file that onnxruntime reads', async () => {
    const dir = await tmpDir();
    const { model, feeds } = mlpModel();
    const path = join(dir, 'mlp.onnx');
    const result = await saveModel(model, path, { externalData: { location: 'mlp.onnx.data', threshold: 1024 } });
    expect(result).toMatchObject({ dataPath: join(dir, 'mlp.onnx.data'), externalTensors: MOVED.length });

    const saved = await loadModel(path);
    const data = await readFile(join(dir, 'mlp.onnx.data'));
    expect(data.length).toBe(result.dataBytes);
    const originals = tensorsByName(model);
    let previousEnd = 0;
    for (const [name, tensor] of tensorsByName(saved.proto)) {
      expect(usesExternalData(tensor), name).toBe(MOVED.includes(name));
      if (!usesExternalData(tensor)) continue;
      const info = externalDataInfo(tensor, path);
      expect(info.location).toBe('mlp.onnx.data');
      expect(info.offset % 4096, `${name} offset ${info.offset}`).toBe(0);
      expect(info.offset).toBeGreaterThanOrEqual(previousEnd);
      previousEnd = info.offset + info.length;
      const expected = tensorBytes(originals.get(name) as TensorProto);
      expect(data.subarray(info.offset, info.offset + info.length).equals(expected), name).toBe(true);
    }
    // The in-memory model is untouched by saving.
    expect([...modelTensors(model)].some((site) => usesExternalData(site.tensor))).toBe(false);
    await expectSameOutputs(encodeModel(model), path, feeds);
  });

  it('reloads lazily (one tensor at a time, ranges too) and eagerly with the same values', async () => {
    const dir = await tmpDir();
    const { model } = mlpModel();
    const path = join(dir, 'mlp.onnx');
    await saveModel(model, path, { externalData: { location: 'weights/mlp.bin' } });

    const lazy = await loadModel(path);
    expect([...modelTensors(lazy.proto)].filter((s) => usesExternalData(s.tensor))).toHaveLength(MOVED.length);
    await expectValuesOf(lazy, model);
    const w1 = tensorsByName(lazy.proto).get('w1') as TensorProto;
    const slice = await readTensorBytes(lazy, w1, { offset: 1000, length: 24 });
    expect(
      Buffer.from(slice).equals(
        Buffer.from(tensorBytes(tensorsByName(model).get('w1') as TensorProto).subarray(1000, 1024)),
      ),
    ).toBe(true);
    await expect(readTensorBytes(lazy, w1, { offset: 262_140, length: 8 })).rejects.toThrow(/outside tensor "w1"/);

    const eager = await loadModel(path, { externalData: 'eager' });
    expect([...modelTensors(eager.proto)].some((s) => usesExternalData(s.tensor))).toBe(false);
    expect(Buffer.from(encodeModel(eager)).equals(Buffer.from(encodeModel(model)))).toBe(true);
  });

  it('re-saves a lazy model elsewhere by streaming from its data file, with other layout options', async () => {
    const dir = await tmpDir();
    const { model, feeds } = mlpModel();
    await saveModel(model, join(dir, 'a.onnx'), { externalData: { location: 'a.data' } });
    const lazy = await loadModel(join(dir, 'a.onnx'));
    const packed = join(dir, 'sub', 'b.onnx');
    await mkdir(join(dir, 'sub'));
    const result = await saveModel(lazy, packed, {
      externalData: { location: 'b.data', threshold: 4096, alignment: 1, attributes: false },
    });
    expect(result.externalTensors).toBe(2); // w1 and w2; b1 (1 KiB) is now below the threshold, const stays inline
    expect(result.dataBytes).toBe(256 * 256 * 4 + 256 * 8 * 4); // alignment 1: packed back to back
    const reloaded = await loadModel(packed);
    await expectValuesOf(reloaded, model);
    await expectSameOutputs(encodeModel(model), packed, feeds);
  });

  it('saves over the data file it reads from, and the in-memory model follows the new layout', async () => {
    const dir = await tmpDir();
    const { model, feeds } = mlpModel();
    const path = join(dir, 'm.onnx');
    await saveModel(model, path, { externalData: { location: 'm.data', alignment: 64 } });
    const lazy = await loadModel(path);
    lazy.proto.docString = 'edited in place';
    // Page alignment now, and a higher threshold: b1 and the Constant come back inline from the old file.
    await saveModel(lazy, path, { externalData: { location: 'm.data', threshold: 2048 } });
    expect(usesExternalData(tensorsByName(lazy.proto).get('b1') as TensorProto)).toBe(false);
    await expectValuesOf(lazy, model); // still readable: offsets were rebased onto the rewritten file
    const reloaded = await loadModel(path);
    expect(reloaded.proto.docString).toBe('edited in place');
    await expectValuesOf(reloaded, model);
    await expectSameOutputs(encodeModel(model), path, feeds);
    const leftovers = (await readdir(dir)).filter((f) => f.endsWith('.tmp'));
    expect(leftovers).toEqual([]);
  });

  it('refuses unsafe or self-referential locations when saving', async () => {
    const dir = await tmpDir();
    const { model } = mlpModel();
    const path = join(dir, 'm.onnx');
    for (const location of ['../escape.data', '/tmp/abs.data', 'm.onnx', '']) {
      const attempt = saveModel(model, path, { externalData: { location } });
      await expect(attempt).rejects.toSatisfy((e) => isOutpostError(e, 'INVALID_ARGUMENT'));
    }
    await expect(stat(path)).rejects.toThrow(/ENOENT/);
  });
});
