import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { expect } from 'vitest';
import type { Feeds, Outputs } from '../../../runtime/model/model.js';
import {
  CaptureWriter,
  readCapture,
  readCaptureTensor,
  type CaptureOptions,
  type CaptureRecord,
} from '../../../runtime/server/capture/writer.js';
import type { InferenceEvent } from '../../../runtime/server/serving/service.js';
import { seededRandom } from '../../../runtime/tensor/tensor.js';
import { tmpDir } from '../../helpers/tmp.js';

/** Calls, writers and readers shared by the data-capture suites. */
export const T0 = Date.UTC(2025, 0, 1); // epoch ms: the fake clock's start
export const LINE_FILE = /^capture-\d{8}\.jsonl$/;
/** Fixed-width version strings: every event's line has the same length. */
export const v = (i: number): string => String(i).padStart(4, '0');

/** Feeds and outputs of call `i`: seeded floats, an int64 and a bool tensor, a string tensor. */
export function event(i: number, extra: Partial<InferenceEvent> = {}): InferenceEvent {
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

export function writer(dir: string, options: Partial<CaptureOptions> = {}): CaptureWriter {
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

export async function lineFiles(dir: string): Promise<string[]> {
  return (await readdir(dir)).filter((n) => LINE_FILE.test(n)).sort();
}

export async function allRecords(dir: string, key?: Buffer): Promise<CaptureRecord[]> {
  const records: CaptureRecord[] = [];
  for (const name of await lineFiles(dir)) records.push(...(await readCapture(join(dir, name), key)));
  return records;
}

/** The bytes one record of `event(i)` takes as an inline, unencrypted line (all events have the same length). */
export async function lineBytes(): Promise<number> {
  const dir = await tmpDir();
  const w = writer(dir);
  w.observer.onInference(event(1));
  await w.close();
  const [name] = await lineFiles(dir);
  return (await stat(join(dir, name ?? ''))).size;
}

/** Every tensor of a record, decoded, compared with what the call saw. */
export async function expectTensors(path: string, record: CaptureRecord, i: number, key?: Buffer): Promise<void> {
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
