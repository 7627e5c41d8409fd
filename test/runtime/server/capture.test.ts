import { randomBytes } from 'node:crypto';
import { readdir, readFile, stat, writeFile, appendFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { isOutpostError } from '../../../runtime/errors.js';
import { readCapture, readCaptureKey, readCaptureTensor } from '../../../runtime/server/capture/writer.js';
import { decodeNpy } from '../../../runtime/tensor/npy.js';
import { seededRandom } from '../../../runtime/tensor/tensor.js';
import { tmpDir } from '../../helpers/tmp.js';
import { T0, allRecords, event, expectTensors, lineBytes, lineFiles, v, writer } from './capture-fixtures.js';

/** Data capture: sampling, rotation and caps, tensor encodings, encryption at rest, reading captures back. */
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
