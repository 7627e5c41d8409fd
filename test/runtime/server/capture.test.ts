import { randomBytes } from 'node:crypto';
import { readdir, readFile, rm, stat, writeFile, appendFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isOutpostError } from '../../../runtime/errors.js';
import type { Feeds, Outputs } from '../../../runtime/model/model.js';
import {
  CaptureWriter,
  readCapture,
  readCaptureKey,
  readCaptureTensor,
  type CaptureOptions,
  type CaptureRecord,
} from '../../../runtime/server/capture.js';
import { ModelService } from '../../../runtime/server/service.js';
import type { InferenceEvent } from '../../../runtime/server/service.js';
import { decodeNpy } from '../../../runtime/tensor/npy.js';
import { seededRandom } from '../../../runtime/tensor/tensor.js';
import { suiteTmpDir, tmpDir } from '../../helpers/tmp.js';
import { loadBatchModels, mlpFeeds, type BatchModels } from './batch-models.js';

const T0 = Date.UTC(2025, 0, 1); // epoch ms: the fake clock's start
const LINE_FILE = /^capture-\d{8}\.jsonl$/;
/** Fixed-width version strings: every event's line has the same length. */
const v = (i: number): string => String(i).padStart(4, '0');

/** Feeds and outputs of call `i`: seeded floats, an int64 and a bool tensor, a string tensor. */
function event(i: number, extra: Partial<InferenceEvent> = {}): InferenceEvent {
  const random = seededRandom(i + 1);
  const feeds: Feeds = {
    x: { data: Float32Array.from({ length: 16 }, () => random() * 2 - 1), dims: [1, 16] },
    ids: { data: BigInt64Array.of(BigInt(i), -1n, 2n ** 62n), dims: [3], type: 'int64' },
  };
  const outputs: Outputs = {
    y: { type: 'float32', dims: [1, 4], data: Float32Array.from({ length: 4 }, () => random()) },
    mask: { type: 'bool', dims: [2], data: Uint8Array.of(1, 0) },
    label: { type: 'string', dims: [1], data: [`label-${v(i)}`] },
  };
  return { name: 'mlp', version: v(i), ms: 1.5, feeds, outputs, ...extra };
}

function writer(dir: string, options: Partial<CaptureOptions> = {}): CaptureWriter {
  return new CaptureWriter({
    dir,
    samplePercent: 100,
    maxFileBytes: 1 << 20,
    maxTotalBytes: 8 << 20,
    tensors: 'inline',
    now: () => T0,
    ...options,
  });
}

async function lineFiles(dir: string): Promise<string[]> {
  return (await readdir(dir)).filter((n) => LINE_FILE.test(n)).sort();
}

async function allRecords(dir: string, key?: Buffer): Promise<CaptureRecord[]> {
  const records: CaptureRecord[] = [];
  for (const name of await lineFiles(dir)) records.push(...(await readCapture(join(dir, name), key)));
  return records;
}

/** The bytes one record of `event(i)` takes as an inline, unencrypted line (all events have the same length). */
async function lineBytes(): Promise<number> {
  const dir = await tmpDir();
  const w = writer(dir);
  w.observer.onInference(event(1));
  await w.close();
  const [name] = await lineFiles(dir);
  return (await stat(join(dir, name ?? ''))).size;
}

/** Every tensor of a record, decoded, compared with what the call saw. */
async function expectTensors(path: string, record: CaptureRecord, i: number, key?: Buffer): Promise<void> {
  const e = event(i);
  const read = async (t: CaptureRecord['inputs'][string] | undefined) => {
    expect(t).toBeDefined();
    return readCaptureTensor(path, t ?? { datatype: 'FP32', shape: [], data: '' }, key);
  };
  expect(await read(record.inputs.x)).toEqual({ type: 'float32', dims: [1, 16], data: e.feeds.x?.data });
  expect(await read(record.inputs.ids)).toEqual({ type: 'int64', dims: [3], data: e.feeds.ids?.data });
  expect(await read(record.outputs.y)).toEqual({ type: 'float32', dims: [1, 4], data: e.outputs?.y?.data });
  expect(await read(record.outputs.mask)).toEqual({ type: 'bool', dims: [2], data: Uint8Array.of(1, 0) });
  expect(await read(record.outputs.label)).toEqual({ type: 'string', dims: [1], data: [`label-${v(i)}`] });
}

describe('CaptureWriter sampling', () => {
  it('captures the share the seeded draw picks, exactly, and none at 0 %', async () => {
    const dir = await tmpDir();
    const calls = 2000;
    const w = writer(dir, { samplePercent: 25, random: seededRandom(7), maxQueue: calls });
    for (let i = 0; i < calls; i++) w.observer.onInference(event(i));
    await w.close();
    // The same seeded sequence, drawn once per call: the writer takes exactly the draws below 25 %.
    const draws = seededRandom(7);
    const expected = Array.from({ length: calls }, (_, i) => i).filter(() => draws() * 100 < 25);
    expect(w.stats()).toMatchObject({ sampled: expected.length, written: expected.length, writeErrors: 0 });
    expect(expected.length / calls).toBeCloseTo(0.25, 1);
    expect((await allRecords(dir)).map((r) => Number(r.version))).toEqual(expected);

    const off = writer(await tmpDir(), { samplePercent: 0 });
    for (let i = 0; i < 100; i++) off.observer.onInference(event(i));
    await off.close();
    expect(off.stats()).toMatchObject({ sampled: 0, written: 0 });
  });

  it('refuses a percentage outside 0–100 and a file cap above the total cap', () => {
    expect(() => writer('/nonexistent', { samplePercent: 101 })).toThrow(/samplePercent/);
    expect(() => writer('/nonexistent', { maxFileBytes: 10, maxTotalBytes: 5 })).toThrow(/maxFileBytes/);
  });
});

describe('CaptureWriter files', () => {
  it('rotates before a file would pass maxFileBytes; only sealed files are offered for upload', async () => {
    const line = await lineBytes();
    const dir = await tmpDir();
    const maxFileBytes = 3 * line + Math.floor(line / 2); // three records per file
    const w = writer(dir, { maxFileBytes, maxTotalBytes: 100 * line });
    for (let i = 0; i < 10; i++) w.observer.onInference(event(i));
    await w.flush();
    const names = await lineFiles(dir);
    expect(names).toHaveLength(4);
    for (const name of names) expect((await stat(join(dir, name))).size).toBeLessThanOrEqual(maxFileBytes);
    const sizes = await Promise.all(names.map(async (n) => (await readCapture(join(dir, n))).length));
    expect(sizes).toEqual([3, 3, 3, 1]);
    // The fourth is still open: not offered until sealed.
    expect((await w.sealedFiles()).map((f) => f.name)).toEqual(names.slice(0, 3));
    await w.close();
    expect((await w.sealedFiles()).map((f) => f.name)).toEqual(names);
    expect((await allRecords(dir)).map((r) => r.version)).toEqual(Array.from({ length: 10 }, (_, i) => v(i)));
  });

  it('seals a file older than maxFileAgeSeconds when the uploader asks, so quiet devices still upload', async () => {
    const dir = await tmpDir();
    let now = T0;
    const w = writer(dir, { now: () => now, maxFileAgeSeconds: 60 });
    w.observer.onInference(event(1));
    await w.flush();
    expect(await w.sealedFiles()).toEqual([]);
    now += 60_000;
    expect((await w.sealedFiles()).map((f) => f.name)).toEqual(['capture-00000001.jsonl']);
    await w.close();
  });

  it('deletes the oldest sealed files beyond maxTotalBytes and counts what was lost, across restarts', async () => {
    const line = await lineBytes();
    const dir = await tmpDir();
    const maxFileBytes = 2 * line; // two records per file
    const maxTotalBytes = 5 * line + Math.floor(line / 2);
    const w = writer(dir, { maxFileBytes, maxTotalBytes });
    for (let i = 0; i < 20; i++) w.observer.onInference(event(i));
    await w.close();
    const dirBytes = async () => {
      let n = 0;
      for (const name of await lineFiles(dir)) n += (await stat(join(dir, name))).size;
      return n;
    };
    expect(await dirBytes()).toBeLessThanOrEqual(maxTotalBytes);
    // Two records a file, five fit: after the 20th record, files 9 and 10 remain (four records).
    const kept = await allRecords(dir);
    expect(kept.map((r) => r.version)).toEqual([16, 17, 18, 19].map(v));
    expect(w.stats()).toMatchObject({ written: 20, droppedByCap: 16, filesDeleted: 8, totalBytes: await dirBytes() });
    expect(await lineFiles(dir)).toEqual(['capture-00000009.jsonl', 'capture-00000010.jsonl']);

    // A new process takes the files over as sealed, never reuses their numbers, and counts their records when the
    // cap deletes them (it reads their lines: it did not write them).
    const again = writer(dir, { maxFileBytes, maxTotalBytes });
    for (let i = 20; i < 26; i++) again.observer.onInference(event(i));
    await again.close();
    expect((await allRecords(dir)).map((r) => r.version)).toEqual([22, 23, 24, 25].map(v));
    expect(await lineFiles(dir)).toEqual(['capture-00000012.jsonl', 'capture-00000013.jsonl']);
    expect(again.stats()).toMatchObject({ written: 6, droppedByCap: 4 + 2, filesDeleted: 3 });
  });

  it('drops (and counts) a record larger than maxFileBytes, writing nothing of it', async () => {
    const line = await lineBytes();
    const dir = await tmpDir();
    const w = writer(dir, { maxFileBytes: line - 1, maxTotalBytes: 10 * line });
    w.observer.onInference(event(1));
    await w.close();
    expect(w.stats()).toMatchObject({ sampled: 1, written: 0, droppedTooLarge: 1 });
    expect(await lineFiles(dir)).toEqual([]);
  });

  it('writes tensors inline as base64 of their bytes, and round-trips every dtype exactly', async () => {
    const dir = await tmpDir();
    const w = writer(dir);
    for (let i = 0; i < 3; i++) w.observer.onInference(event(i));
    await w.close();
    const path = join(dir, 'capture-00000001.jsonl');
    const records = await readCapture(path);
    expect(records).toHaveLength(3);
    expect(await readdir(dir)).not.toContainEqual(expect.stringMatching(/\.npy$/));
    expect(records[0]).toMatchObject({
      ts: new Date(T0).toISOString(),
      model: 'mlp',
      version: v(0),
      latencyMs: 1.5,
      inputs: { x: { datatype: 'FP32', shape: [1, 16] }, ids: { datatype: 'INT64', shape: [3] } },
      outputs: { label: { datatype: 'BYTES', shape: [1], values: [`label-${v(0)}`] } },
    });
    const x = event(0).feeds.x?.data as Float32Array;
    expect(records[0]?.inputs.x?.data).toBe(Buffer.from(x.buffer, x.byteOffset, x.byteLength).toString('base64'));
    for (const [i, record] of records.entries()) await expectTensors(path, record, i);
  });

  it('writes tensors as .npy side files (strings stay inline), numpy-readable, counted in the file size', async () => {
    const dir = await tmpDir();
    const w = writer(dir, { tensors: 'files' });
    for (let i = 0; i < 2; i++) w.observer.onInference(event(i));
    await w.close();
    const path = join(dir, 'capture-00000001.jsonl');
    const records = await readCapture(path);
    expect(records[1]?.inputs.x).toEqual({ datatype: 'FP32', shape: [1, 16], file: 'capture-00000001-000001-in0.npy' });
    expect(records[1]?.outputs.label).toEqual({ datatype: 'BYTES', shape: [1], values: [`label-${v(1)}`] });
    const npy = decodeNpy(await readFile(join(dir, 'capture-00000001-000001-in0.npy')));
    expect(npy).toEqual({ dtype: 'float32', shape: [1, 16], data: event(1).feeds.x?.data });
    for (const [i, record] of records.entries()) await expectTensors(path, record, i);
    // The uploader gets each segment's side files before the line file that names them.
    const sealed = (await w.sealedFiles()).map((f) => f.name);
    expect(sealed.at(-1)).toBe('capture-00000001.jsonl');
    expect(sealed).toHaveLength(1 + 2 * 4); // per record: x, ids, y, mask as .npy
    let bytes = 0;
    for (const name of sealed) bytes += (await stat(join(dir, name))).size;
    expect(w.stats().totalBytes).toBe(bytes);
  });
});

describe('CaptureWriter encryption at rest', () => {
  it('leaves no plaintext on disk; the key reads every tensor back exactly; a wrong key is a typed error', async () => {
    const key = randomBytes(32);
    for (const tensors of ['inline', 'files'] as const) {
      const dir = await tmpDir();
      const w = writer(dir, { tensors, encryptionKey: key });
      for (let i = 0; i < 3; i++) w.observer.onInference(event(i, { name: 'secret-model' }));
      await w.close();
      const x = event(0).feeds.x?.data as Float32Array;
      const plain = [
        Buffer.from('secret-model'),
        Buffer.from(`label-${v(0)}`),
        Buffer.from(x.buffer, x.byteOffset, x.byteLength),
        Buffer.from(Buffer.from(x.buffer, x.byteOffset, x.byteLength).toString('base64')),
        Buffer.from('NUMPY'),
        Buffer.from('"inputs"'),
      ];
      const names = await readdir(dir);
      for (const name of names.filter((n) => n.startsWith('capture-'))) {
        const bytes = await readFile(join(dir, name));
        for (const p of plain) expect(bytes.includes(p), `${name} holds ${p.toString('hex')}`).toBe(false);
      }
      if (tensors === 'files') expect(names).toContain('capture-00000001-000000-in0.npy.enc');

      const path = join(dir, 'capture-00000001.jsonl');
      const records = await readCapture(path, key);
      expect(records.map((r) => r.model)).toEqual(['secret-model', 'secret-model', 'secret-model']);
      for (const [i, record] of records.entries()) await expectTensors(path, record, i, key);

      const wrong = randomBytes(32);
      await expect(readCapture(path, wrong)).rejects.toSatisfy((e) => isOutpostError(e, 'CAPTURE_DECRYPT_FAILED'));
      await expect(readCapture(path)).rejects.toSatisfy((e) => isOutpostError(e, 'CAPTURE_DECRYPT_FAILED'));
      if (tensors === 'files') {
        const t = records[0]?.inputs.x ?? { datatype: 'FP32', shape: [], file: 'missing' };
        await expect(readCaptureTensor(path, t, wrong)).rejects.toSatisfy((e) =>
          isOutpostError(e, 'CAPTURE_DECRYPT_FAILED'),
        );
        await expect(readCaptureTensor(path, t)).rejects.toSatisfy((e) => isOutpostError(e, 'CAPTURE_DECRYPT_FAILED'));
      }
    }
  });

  it('detects a flipped bit, refuses a short key, and reads hex, base64 and raw key files', async () => {
    const key = randomBytes(32);
    const dir = await tmpDir();
    const w = writer(dir, { encryptionKey: key });
    w.observer.onInference(event(1));
    await w.close();
    const path = join(dir, 'capture-00000001.jsonl');
    const text = await readFile(path, 'utf8');
    const flipped = (text[10] === 'A' ? 'B' : 'A') as string;
    await writeFile(path, text.slice(0, 10) + flipped + text.slice(11));
    await expect(readCapture(path, key)).rejects.toSatisfy((e) => isOutpostError(e, 'CAPTURE_DECRYPT_FAILED'));
    expect(() => writer(dir, { encryptionKey: randomBytes(16) })).toThrow(/32 bytes/);

    for (const [name, body] of [
      ['hex', `${key.toString('hex')}\n`],
      ['base64', key.toString('base64')],
      ['raw', key],
    ] as const) {
      await writeFile(join(dir, name), body);
      expect((await readCaptureKey(join(dir, name))).equals(key)).toBe(true);
    }
    await writeFile(join(dir, 'short'), 'abcd');
    await expect(readCaptureKey(join(dir, 'short'))).rejects.toSatisfy((e) => isOutpostError(e, 'CONFIG_INVALID'));
  });
});

describe('readCapture', () => {
  it('skips a torn last line, names a bad one, and refuses side files outside the capture directory', async () => {
    const dir = await tmpDir();
    const w = writer(dir);
    w.observer.onInference(event(1));
    await w.close();
    const path = join(dir, 'capture-00000001.jsonl');
    await appendFile(path, '{"ts":"2025-01-01T00:00:00.000Z","model":"ml'); // a crash mid-append
    expect(await readCapture(path)).toHaveLength(1);
    await appendFile(path, '\n');
    await expect(readCapture(path)).rejects.toSatisfy(
      (e) => isOutpostError(e, 'CAPTURE_INVALID') && /line 2/.test((e as Error).message),
    );
    const evil = JSON.stringify({
      ts: 'x',
      model: 'm',
      version: '1',
      latencyMs: 1,
      inputs: { x: { datatype: 'FP32', shape: [1], file: '../../etc/passwd' } },
      outputs: {},
    });
    await writeFile(join(dir, 'evil.jsonl'), `${evil}\n`);
    await expect(readCapture(join(dir, 'evil.jsonl'))).rejects.toSatisfy(
      (e) => isOutpostError(e, 'CAPTURE_INVALID') && /file/.test((e as Error).message),
    );
  });
});

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
