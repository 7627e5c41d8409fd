import { mkdir, readFile, rm, symlink, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { clearField, clone, create } from '@bufbuild/protobuf';
import { ModelProtoSchema, StringStringEntryProtoSchema } from 'onnx-buf';
import { describe, expect, it } from 'vitest';
import {
  decodeModel,
  encodeModel,
  loadModel,
  modelTensors,
  readTensor,
  saveModel,
  type ModelProto,
  type OnnxModel,
  type TensorProto,
} from '../../../compiler/onnx/index.js';
import { REAL_MODELS } from '../../helpers/models.js';
import { tmpDir } from '../../helpers/tmp.js';
import { mlpModel, prng } from './helpers.js';

function named(model: ModelProto, name: string): TensorProto {
  const site = [...modelTensors(model)].find((s) => s.tensor.name === name);
  if (site === undefined) throw new Error(`no tensor ${name}`);
  return site.tensor;
}

/** Saves the generated MLP with external data, then lets the test corrupt the w1 reference and re-encode. */
async function modelWithBrokenReference(dir: string, edit: (entries: Map<string, string>) => void): Promise<string> {
  const { model } = mlpModel();
  const path = join(dir, 'm.onnx');
  await saveModel(model, path, { externalData: { location: 'm.data' } });
  const saved: OnnxModel = decodeModel(await readFile(path));
  const w1 = named(saved.proto, 'w1');
  const entries = new Map(w1.externalData.map((e) => [e.key, e.value]));
  edit(entries);
  w1.externalData = [...entries].map(([key, value]) => create(StringStringEntryProtoSchema, { key, value }));
  await writeFile(path, encodeModel(saved));
  return path;
}

describe('unreadable models', () => {
  it('a truncated file is MODEL_INVALID naming the file', async () => {
    const dir = await tmpDir();
    const path = join(dir, 'truncated.onnx');
    const bytes = await readFile(REAL_MODELS.sileroLegacy);
    for (const keep of [bytes.length / 2, 100, bytes.length - 1]) {
      await writeFile(path, bytes.subarray(0, Math.floor(keep)));
      await expect(loadModel(path)).rejects.toMatchObject({
        code: 'MODEL_INVALID',
        message: expect.stringContaining(path) as unknown,
      });
    }
  });

  it('random bytes, an empty file and text are MODEL_INVALID', async () => {
    const dir = await tmpDir();
    const random = prng(99);
    const cases = {
      'random.onnx': Uint8Array.from({ length: 4096 }, () => Math.floor(random() * 256)),
      'empty.onnx': new Uint8Array(0),
      'text.onnx': new TextEncoder().encode('{"not": "a model"}\n'),
    };
    for (const [name, content] of Object.entries(cases)) {
      const path = join(dir, name);
      await writeFile(path, content);
      await expect(loadModel(path)).rejects.toMatchObject({
        code: 'MODEL_INVALID',
        message: expect.stringContaining(path) as unknown,
      });
    }
  });

  it('a protobuf that is not a model (no graph, no ir_version) is MODEL_INVALID', () => {
    const { model } = mlpModel();
    const noGraph = clone(ModelProtoSchema, model);
    clearField(noGraph, ModelProtoSchema.field.graph);
    expect(() => decodeModel(encodeModel(noGraph), { source: 'x.onnx' })).toThrow(
      /x.onnx is not a valid ONNX model: it has no graph/,
    );
    const noIr = clone(ModelProtoSchema, model);
    clearField(noIr, ModelProtoSchema.field.irVersion);
    expect(() => decodeModel(encodeModel(noIr))).toThrow(/ir_version is missing/);
  });

  it('a missing file and a directory are FILE_NOT_FOUND and FILE_UNREADABLE', async () => {
    const dir = await tmpDir();
    await expect(loadModel(join(dir, 'nope.onnx'))).rejects.toMatchObject({
      code: 'FILE_NOT_FOUND',
      message: expect.stringContaining('nope.onnx') as unknown,
    });
    await expect(loadModel(dir)).rejects.toMatchObject({
      code: 'FILE_UNREADABLE',
      message: expect.stringContaining('is a directory') as unknown,
    });
  });
});

describe('broken external data', () => {
  it('a missing data file is MODEL_EXTERNAL_DATA_MISSING naming the file and the tensor', async () => {
    const dir = await tmpDir();
    const path = await modelWithBrokenReference(dir, () => undefined);
    await rm(join(dir, 'm.data'));
    const refused = loadModel(path);
    await expect(refused).rejects.toMatchObject({ code: 'MODEL_EXTERNAL_DATA_MISSING' });
    for (const part of [join(dir, 'm.data'), 'tensor "w1"']) await expect(refused).rejects.toThrow(part);
  });

  it('a data file deleted after a lazy load fails the read the same way', async () => {
    const dir = await tmpDir();
    const path = await modelWithBrokenReference(dir, () => undefined);
    const model = await loadModel(path);
    await rm(join(dir, 'm.data'));
    await expect(readTensor(model, named(model.proto, 'w2'))).rejects.toMatchObject({
      code: 'MODEL_EXTERNAL_DATA_MISSING',
      message: expect.stringContaining('tensor "w2"') as unknown,
    });
  });

  it.each([
    { what: "a '..' location", location: '../m.data' },
    { what: 'a nested .. location', location: 'a/../../m.data' },
    { what: 'an absolute location', location: '/etc/passwd' },
    { what: 'a Windows absolute location', location: 'C:\\data\\m.data' },
  ])('$what is MODEL_INVALID', async ({ location }) => {
    const dir = await tmpDir();
    const path = await modelWithBrokenReference(dir, (entries) => entries.set('location', location));
    const refused = loadModel(path);
    await expect(refused).rejects.toMatchObject({ code: 'MODEL_INVALID' });
    for (const part of ['tensor "w1"', location]) await expect(refused).rejects.toThrow(part);
  });

  it('a symlink that leads out of the model directory is MODEL_INVALID', async () => {
    const dir = await tmpDir();
    const outside = await tmpDir();
    const modelDir = join(dir, 'model');
    await mkdir(modelDir);
    const { model } = mlpModel();
    await saveModel(model, join(outside, 'm.onnx'), { externalData: { location: 'm.data' } });
    await writeFile(join(modelDir, 'm.onnx'), await readFile(join(outside, 'm.onnx')));
    await symlink(join(outside, 'm.data'), join(modelDir, 'm.data'));
    await expect(loadModel(join(modelDir, 'm.onnx'))).rejects.toMatchObject({
      code: 'MODEL_INVALID',
      message: expect.stringContaining("outside the model's directory") as unknown,
    });
  });

  it('offsets past the end, bad numbers and wrong lengths are MODEL_INVALID', async () => {
    const dir = await tmpDir();
    let path = await modelWithBrokenReference(dir, () => undefined);
    await truncate(join(dir, 'm.data'), 1000);
    const refused = loadModel(path);
    await expect(refused).rejects.toMatchObject({ code: 'MODEL_INVALID' });
    for (const part of ['tensor "w1"', 'which has 1000']) await expect(refused).rejects.toThrow(part);
    path = await modelWithBrokenReference(dir, (entries) => entries.set('offset', '-4'));
    await expect(loadModel(path)).rejects.toMatchObject({
      code: 'MODEL_INVALID',
      message: expect.stringContaining('offset="-4"') as unknown,
    });
    path = await modelWithBrokenReference(dir, (entries) => entries.set('length', '12'));
    const tooLong = loadModel(path);
    await expect(tooLong).rejects.toMatchObject({ code: 'MODEL_INVALID' });
    for (const part of ['length 12', '262144 bytes']) await expect(tooLong).rejects.toThrow(part);
  });

  it('a bare ModelProto with external tensors has no directory to read them from', async () => {
    const dir = await tmpDir();
    const path = await modelWithBrokenReference(dir, () => undefined);
    const bare = decodeModel(await readFile(path));
    await expect(readTensor(bare, named(bare.proto, 'w1'))).rejects.toMatchObject({
      code: 'MODEL_EXTERNAL_DATA_MISSING',
      message: expect.stringContaining('not loaded from a directory') as unknown,
    });
  });
});
