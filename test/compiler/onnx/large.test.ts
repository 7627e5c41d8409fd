import { statfs, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { create } from '@bufbuild/protobuf';
import { TensorProtoSchema, TensorProto_DataType } from 'onnx-buf';
import { describe, expect, it } from 'vitest';
import {
  GraphBuilder,
  PROTOBUF_LIMIT,
  externalDataInfo,
  loadModel,
  mainGraph,
  readTensorBytes,
  saveModel,
  type OnnxModel,
  type TensorProto,
} from '../../../compiler/onnx/index.js';
import { isOutpostError } from '../../../runtime/errors.js';
import { tmpDir } from '../../helpers/tmp.js';

/**
 * A model whose external data passes 2 GiB: five 560 MiB uint8 initializers (2.73 GiB of data; the last starts past 2^31),
 * all views into one buffer at different shifts so each tensor's bytes differ, and at most ~0.6 GiB is held at once.
 * Written, reloaded lazily, sampled, and streamed into a second file. Not run through ONNX Runtime.
 */
const TENSOR_BYTES = 560 * 1024 * 1024;
const TENSORS = 5;
const SHIFT = 4097; // bytes between the tensors' starts in the shared buffer: not a multiple of anything aligned
const NEEDED_FREE = 8 * 1024 ** 3; // bytes: two 2.7 GiB data files plus headroom
const LARGE_TIMEOUT = 180_000; // ms: ~5.5 GiB written and fsynced, ~2.7 GiB read

const fs = await statfs(tmpdir());
const free = fs.bavail * fs.bsize;
const enough = free >= NEEDED_FREE;
const title = enough
  ? 'external data past 2 GiB'
  : `external data past 2 GiB — SKIPPED: ${(free / 1024 ** 3).toFixed(1)} GiB free in ${tmpdir()}, needs 8 GiB`;

function sharedBuffer(): Uint8Array<ArrayBuffer> {
  const words = new Uint32Array((TENSOR_BYTES + SHIFT * TENSORS) / 4 + 1);
  // A multiplicative hash of the index: no short period, so a wrong offset reads different bytes.
  for (let i = 0; i < words.length; i++) words[i] = Math.imul(i, 2654435761) >>> 0;
  return new Uint8Array(words.buffer);
}

function bigModel(buffer: Uint8Array<ArrayBuffer>) {
  const g = new GraphBuilder('big');
  const graph = g.toGraph();
  for (let k = 0; k < TENSORS; k++) {
    // A view, not a copy: makeTensor would copy 560 MiB per tensor.
    const rawData = buffer.subarray(k * SHIFT, k * SHIFT + TENSOR_BYTES);
    graph.initializer.push(
      create(TensorProtoSchema, {
        name: `w${k}`,
        dataType: TensorProto_DataType.UINT8,
        dims: [BigInt(TENSOR_BYTES)],
        rawData,
      }),
    );
  }
  const x = g.input('x', 'uint8', [TENSOR_BYTES]);
  g.output(g.node('Add', [x, 'w4']), 'uint8', [TENSOR_BYTES]);
  return g.build({ opsets: { '': 17 } });
}

async function expectSamples(model: OnnxModel, buffer: Uint8Array): Promise<void> {
  const initializers = mainGraph(model.proto).initializer;
  for (const [k, tensor] of initializers.entries()) {
    for (const at of [0, 123_457, TENSOR_BYTES / 2 + 3, TENSOR_BYTES - 4096]) {
      const sample = await readTensorBytes(model, tensor, { offset: at, length: 4096 });
      const expected = buffer.subarray(k * SHIFT + at, k * SHIFT + at + 4096);
      expect(Buffer.from(sample).equals(Buffer.from(expected)), `w${k} at ${at}`).toBe(true);
    }
  }
}

function layoutOf(model: OnnxModel): { offset: number; length: number }[] {
  return mainGraph(model.proto).initializer.map((t: TensorProto) => externalDataInfo(t, model.source));
}

describe.skipIf(!enough)(title, () => {
  it(
    'saves by streaming, reloads lazily with offsets past 2^31, and re-saves from the lazy model',
    async () => {
      const dir = await tmpDir();
      const buffer = sharedBuffer();
      const model = bigModel(buffer);
      const path = join(dir, 'big.onnx');
      // durable: false — this test checks layout, not crash safety, and fsyncing 5.5 GiB would double its time.
      const saved = await saveModel(model, path, { externalData: { location: 'big.onnx.data' }, durable: false });
      expect(saved.externalTensors).toBe(TENSORS);
      expect(saved.bytes).toBeLessThan(4096); // the proto itself is tiny
      expect(saved.dataBytes).toBeGreaterThan(2 ** 31);

      const lazy = await loadModel(path);
      const layout = layoutOf(lazy);
      for (const [k, { offset, length }] of layout.entries()) {
        expect(length).toBe(TENSOR_BYTES);
        expect(offset % 4096).toBe(0);
        expect(offset).toBe(Math.ceil((k * TENSOR_BYTES) / 4096) * 4096);
      }
      expect(layout[TENSORS - 1]?.offset).toBeGreaterThan(2 ** 31);
      expect((await stat(join(dir, 'big.onnx.data'))).size).toBe(saved.dataBytes);
      await expectSamples(lazy, buffer);

      // The lazy model cannot be embedded (one protobuf would pass 2 GiB): refused before anything is read.
      const embedded = await saveModel(lazy, join(dir, 'embedded.onnx')).catch((e: unknown) => e);
      expect(isOutpostError(embedded, 'MODEL_UNSUPPORTED')).toBe(true);
      expect((embedded as Error).message).toMatch(/over protobuf's 2 GiB limit/);
      expect(TENSORS * TENSOR_BYTES).toBeGreaterThan(PROTOBUF_LIMIT);

      // Re-save from the lazy model: tensor data is copied file to file, 16 MiB at a time.
      const copy = join(dir, 'copy', 'big.onnx');
      const resaved = await saveModel(lazy, copy, {
        externalData: { location: 'big.bin', alignment: 65536 },
        durable: false,
      });
      expect(resaved.dataBytes).toBeGreaterThan(2 ** 31);
      const reloaded = await loadModel(copy);
      for (const { offset } of layoutOf(reloaded)) expect(offset % 65536).toBe(0);
      await expectSamples(reloaded, buffer);
    },
    LARGE_TIMEOUT,
  );
});
