import { randomBytes } from 'node:crypto';
import { readdir, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isOutpostError } from '../../../runtime/errors.js';
import type { Outputs } from '../../../runtime/model/model.js';
import { readCapture, readCaptureTensor } from '../../../runtime/server/capture/writer.js';
import { ModelService } from '../../../runtime/server/serving/service.js';
import { suiteTmpDir, tmpDir } from '../../helpers/tmp.js';
import { loadBatchModels, mlpFeeds, type BatchModels } from './batch-models.js';
import { allRecords, event, v, writer } from './capture-fixtures.js';

/** Data capture when things go wrong (full queue, disk errors, shutdown) and on a real model service. */
describe('CaptureWriter under pressure', () => {
  it('drops calls beyond its queue at once and counts them; the calls never wait for the disk', async () => {
    const dir = await tmpDir();
    const w = writer(dir, { maxQueue: 4 });
    for (let i = 0; i < 100; i++) w.observer.onInference(event(i));
    // Nothing was awaited: the drops are already counted, synchronously.
    expect(w.stats()).toMatchObject({ sampled: 100, droppedQueueFull: 96, written: 0 });
    await w.close();
    expect(w.stats()).toMatchObject({ written: 4, droppedQueueFull: 96, queued: 0 });
    expect((await allRecords(dir)).map((r) => r.version)).toEqual([0, 1, 2, 3].map(v));

    const byBytes = writer(await tmpDir(), { maxQueueBytes: 200 }); // one event is 16·4 + 3·8 + 16 + 2 + 14 bytes
    for (let i = 0; i < 10; i++) byBytes.observer.onInference(event(i));
    expect(byBytes.stats()).toMatchObject({ sampled: 10, droppedQueueFull: 9 });
    await byBytes.close();
  });

  it('keeps the callers’ buffers theirs: a feed reused after the call does not change the capture', async () => {
    const dir = await tmpDir();
    const w = writer(dir);
    const e = event(1);
    w.observer.onInference(e);
    (e.feeds.x?.data as Float32Array).fill(0);
    await w.close();
    const path = join(dir, 'capture-00000001.jsonl');
    const [record] = await readCapture(path);
    const x = await readCaptureTensor(path, record?.inputs.x ?? { datatype: 'FP32', shape: [], data: '' });
    expect(x.data).toEqual(event(1).feeds.x?.data);
  });

  it('counts a write error and keeps going: the directory replaced by a file, then restored', async () => {
    const root = await tmpDir();
    const dir = join(root, 'capture');
    const w = writer(dir);
    await w.open();
    await rm(dir, { recursive: true });
    await writeFile(dir, 'not a directory');
    for (let i = 0; i < 3; i++) w.observer.onInference(event(i));
    await w.flush();
    expect(w.stats()).toMatchObject({ sampled: 3, written: 0, writeErrors: 3 });
    await rm(dir);
    for (let i = 3; i < 5; i++) w.observer.onInference(event(i));
    await w.close();
    expect(w.stats()).toMatchObject({ sampled: 5, written: 2, writeErrors: 3 });
    expect((await allRecords(dir)).map((r) => r.version)).toEqual([3, 4].map(v));

    // Unusable from the start (the first open fails): the open is retried, not remembered as failed.
    const late = join(root, 'late');
    await writeFile(late, 'not a directory');
    const w2 = writer(late);
    await expect(w2.open()).rejects.toSatisfy((e) => isOutpostError(e));
    w2.observer.onInference(event(0));
    await w2.flush();
    await rm(late);
    w2.observer.onInference(event(1));
    await w2.close();
    expect(w2.stats()).toMatchObject({ written: 1, writeErrors: 1 });
  });

  it('counts records lost when the directory is removed under an open file, and writes again after', async () => {
    const root = await tmpDir();
    const dir = join(root, 'capture');
    const w = writer(dir);
    for (let i = 0; i < 2; i++) w.observer.onInference(event(i));
    await w.flush();
    await rm(dir, { recursive: true });
    w.observer.onInference(event(2)); // into the open, now nameless, file
    await w.flush();
    await w.rotate();
    expect(w.stats()).toMatchObject({ written: 3, lost: 3, totalBytes: 0 });
    expect(await w.sealedFiles()).toEqual([]);
    w.observer.onInference(event(3));
    await w.close();
    expect((await allRecords(dir)).map((r) => r.version)).toEqual([v(3)]);
    expect(w.stats().totalBytes).toBe((await stat(join(dir, 'capture-00000002.jsonl'))).size);
  });

  it('close() writes everything queued, seals the file and ignores later calls', async () => {
    const dir = await tmpDir();
    const w = writer(dir);
    for (let i = 0; i < 10; i++) w.observer.onInference(event(i));
    await w.close();
    w.observer.onInference(event(10));
    expect(w.stats()).toMatchObject({ sampled: 10, written: 10, queued: 0 });
    expect((await w.sealedFiles()).map((f) => f.name)).toEqual(['capture-00000001.jsonl']);
    expect(await allRecords(dir)).toHaveLength(10);
  });

  it('deletes an uploaded file, refuses the open one, and forgets one deleted meanwhile', async () => {
    const dir = await tmpDir();
    const w = writer(dir, { tensors: 'files' });
    w.observer.onInference(event(1));
    await w.flush();
    await expect(w.markUploaded(join(dir, 'capture-00000001.jsonl'))).rejects.toSatisfy((e) =>
      isOutpostError(e, 'INVALID_ARGUMENT'),
    );
    await w.rotate();
    for (const file of await w.sealedFiles()) await w.markUploaded(file.path);
    expect(await w.sealedFiles()).toEqual([]);
    expect(w.stats().totalBytes).toBe(0);
    expect((await readdir(dir)).filter((n) => n.startsWith('capture-'))).toEqual([]);
    await w.markUploaded(join(dir, 'capture-00000001.jsonl')); // already gone: fine
    await w.close();
  });
});

describe('CaptureWriter on a real model service', () => {
  let models: BatchModels;
  let dispose: () => Promise<void>;

  beforeAll(async () => {
    const tmp = await suiteTmpDir();
    dispose = tmp.dispose;
    models = await loadBatchModels(tmp.dir);
  });
  afterAll(async () => {
    await models.release();
    await dispose();
  });

  it('records what ONNX Runtime was fed and answered, bit for bit, and failed calls with their code', async () => {
    const dir = await tmpDir();
    const key = randomBytes(32);
    const w = writer(dir, { tensors: 'files', encryptionKey: key });
    const service = new ModelService(models.mlp.name, { observers: [w.observer] });
    await service.setVersions([{ model: models.mlp }]);
    const answers: Outputs[] = [];
    for (let i = 0; i < 3; i++) answers.push((await service.infer(mlpFeeds(2, i))).outputs);
    await expect(service.infer({ x: { data: new Float32Array(5), dims: [1, 5] } })).rejects.toThrow();
    await service.close();
    await w.close();

    const path = join(dir, 'capture-00000001.jsonl');
    const records = await readCapture(path, key);
    expect(records).toHaveLength(4);
    for (const [i, record] of records.slice(0, 3).entries()) {
      expect(record).toMatchObject({ model: models.mlp.name, version: models.mlp.version });
      expect(record.latencyMs).toBeGreaterThan(0);
      const x = await readCaptureTensor(path, record.inputs.x ?? { datatype: '', shape: [] }, key);
      expect(x).toEqual({ type: 'float32', dims: [2, 16], data: mlpFeeds(2, i).x?.data });
      const logits = await readCaptureTensor(path, record.outputs.logits ?? { datatype: '', shape: [] }, key);
      expect(logits.dims).toEqual([2, 10]);
      expect(logits.data).toEqual(answers[i]?.logits?.data);
    }
    expect(records[3]?.error?.code).toMatch(/^INPUT_/);
    expect(records[3]?.outputs).toEqual({});
  });
});
