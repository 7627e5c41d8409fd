import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CaptureWriter } from '../../runtime/server/capture/writer.js';
import { runCli } from '../helpers/cli.js';
import { tmpDir } from '../helpers/tmp.js';

/** Two captured calls (one failed), tensors as encrypted side files, and the key file an operator would hold. */
async function encryptedCapture(): Promise<{ file: string; keyFile: string }> {
  const dir = await tmpDir();
  const key = randomBytes(32);
  const keyFile = join(dir, 'capture.key');
  await writeFile(keyFile, `${key.toString('hex')}\n`);
  const writer = new CaptureWriter({
    dir: join(dir, 'capture'),
    samplePercent: 100,
    maxFileBytes: 1 << 20,
    maxTotalBytes: 1 << 20,
    tensors: 'files',
    encryptionKey: key,
    now: () => Date.UTC(2025, 0, 2, 3, 4, 5),
  });
  writer.observer.onInference({
    name: 'mlp',
    version: '2',
    ms: 1.25,
    feeds: {
      x: { data: Float32Array.of(0.5, -1, 2), dims: [1, 3] },
      ids: { data: BigInt64Array.of(7n), dims: [1], type: 'int64' },
    },
    outputs: { label: { type: 'string', dims: [1], data: ['cat'] } },
  });
  writer.observer.onInference({
    name: 'mlp',
    version: '2',
    ms: 0.5,
    feeds: { x: { data: Float32Array.of(1), dims: [1, 1] } },
    error: new Error('boom'),
  });
  await writer.close();
  return { file: join(dir, 'capture', 'capture-00000001.jsonl'), keyFile };
}

describe('outpost capture read', () => {
  it('decrypts a capture with the key and prints every tensor (--json)', async () => {
    const { file, keyFile } = await encryptedCapture();
    const { code, stdout, stderr } = await runCli(['capture', 'read', file, '--key', keyFile, '--json']);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    expect(JSON.parse(stdout)).toEqual([
      {
        ts: '2025-01-02T03:04:05.000Z',
        model: 'mlp',
        version: '2',
        latencyMs: 1.25,
        inputs: {
          x: { datatype: 'FP32', shape: [1, 3], data: [0.5, -1, 2] },
          ids: { datatype: 'INT64', shape: [1], data: [7] },
        },
        outputs: { label: { datatype: 'BYTES', shape: [1], data: ['cat'] } },
      },
      {
        ts: '2025-01-02T03:04:05.000Z',
        model: 'mlp',
        version: '2',
        latencyMs: 0.5,
        inputs: { x: { datatype: 'FP32', shape: [1, 1], data: [1] } },
        outputs: {},
        error: { code: 'INTERNAL', message: 'boom' },
      },
    ]);
  });

  it('prints one line per record for people', async () => {
    const { file, keyFile } = await encryptedCapture();
    const { code, stdout } = await runCli(['capture', 'read', file, '--key', keyFile]);
    expect(code).toBe(0);
    expect(stdout.trim().split('\n')).toEqual([
      '2025-01-02T03:04:05.000Z  mlp@2  1.25 ms  in: x FP32[1,3] (capture-00000001-000000-in0.npy.enc), ids INT64[1] (capture-00000001-000000-in1.npy.enc)  out: label BYTES[1]',
      '2025-01-02T03:04:05.000Z  mlp@2  0.50 ms  in: x FP32[1,1] (capture-00000001-000001-in0.npy.enc)  out: -  error INTERNAL: boom',
      '2 record(s)',
    ]);
  });

  it('fails in one line without the key, or with the wrong one', async () => {
    const { file } = await encryptedCapture();
    const noKey = await runCli(['capture', 'read', file]);
    expect(noKey.code).toBe(1);
    expect(noKey.stderr.trim()).toMatch(/^outpost: .+ \[CAPTURE_DECRYPT_FAILED\]$/);
    const wrong = join(await tmpDir(), 'wrong.key');
    await writeFile(wrong, randomBytes(32).toString('base64'));
    const wrongKey = await runCli(['capture', 'read', file, '--key', wrong]);
    expect(wrongKey.code).toBe(1);
    expect(wrongKey.stderr.trim()).toMatch(/^outpost: .+wrong key.+ \[CAPTURE_DECRYPT_FAILED\]$/);
  });
});
