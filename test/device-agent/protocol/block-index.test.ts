import { createHash, randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  blockCount,
  blockLength,
  buildBlockIndex,
  buildBlockIndexFromFile,
  encodeBlockIndex,
  isProtocolError,
  parseBlockIndex,
  verifyBlock,
} from '../../../device-agent/protocol/index.js';
import { tmpDir } from '../../helpers/tmp.js';

const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');

async function* chunks(data: Buffer, sizes: number[]): AsyncGenerator<Uint8Array> {
  await Promise.resolve(); // a source that really is asynchronous
  let at = 0;
  for (let i = 0; at < data.length; i++) {
    const size = sizes[i % sizes.length] ?? 1;
    yield data.subarray(at, at + size);
    at += size;
  }
}

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  return undefined;
}

describe('block-hash index', () => {
  const data = randomBytes(10_000);

  it('hashes every block, the last one short, whatever the chunking of the source', async () => {
    const index = await buildBlockIndex(chunks(data, [1, 700, 4096, 3]), 1024);
    expect(index).toEqual({
      algorithm: 'sha256',
      blockSize: 1024,
      size: 10_000,
      sha256: sha256(data),
      blocks: Array.from({ length: 10 }, (_, i) => sha256(data.subarray(i * 1024, (i + 1) * 1024))),
    });
    expect(blockCount(10_000, 1024)).toBe(10);
    expect(blockLength(10_000, 1024, 9)).toBe(784);
    expect(blockLength(10_000, 1024, 10)).toBe(0);
  });

  it('builds the same index from a file, and an empty file has no blocks', async () => {
    const dir = await tmpDir();
    await writeFile(join(dir, 'a.bin'), data);
    await writeFile(join(dir, 'empty.bin'), '');
    expect(await buildBlockIndexFromFile(join(dir, 'a.bin'), 1024)).toEqual(
      await buildBlockIndex(chunks(data, [10_000]), 1024),
    );
    expect((await buildBlockIndexFromFile(join(dir, 'empty.bin'), 256)).blocks).toEqual([]);
  });

  it('verifies blocks by length and hash, so a corrupted or truncated block is caught', async () => {
    const index = await buildBlockIndex(chunks(data, [10_000]), 1024);
    expect(verifyBlock(index, 3, data.subarray(3072, 4096))).toBe(true);
    const corrupted = Buffer.from(data.subarray(3072, 4096));
    corrupted[100] = (corrupted[100] ?? 0) ^ 1;
    expect(verifyBlock(index, 3, corrupted)).toBe(false);
    expect(verifyBlock(index, 9, data.subarray(9216))).toBe(true);
    expect(verifyBlock(index, 9, data.subarray(9216, 9999))).toBe(false);
    expect(verifyBlock(index, 10, new Uint8Array())).toBe(false);
  });

  it('round-trips through its file form, deterministically', async () => {
    const index = await buildBlockIndex(chunks(data, [333]), 2048);
    const bytes = encodeBlockIndex(index);
    expect(parseBlockIndex(bytes)).toEqual(index);
    expect(encodeBlockIndex(parseBlockIndex(bytes))).toEqual(bytes);
  });

  it.each([
    ['blocks', { algorithm: 'sha256', blockSize: 1024, size: 2049, sha256: 'a'.repeat(64), blocks: ['b'.repeat(64)] }],
    ['algorithm', { algorithm: 'md5', blockSize: 1024, size: 0, sha256: 'a'.repeat(64), blocks: [] }],
    ['blockSize', { algorithm: 'sha256', blockSize: 100, size: 0, sha256: 'a'.repeat(64), blocks: [] }],
    ['blocks[0]', { algorithm: 'sha256', blockSize: 1024, size: 1, sha256: 'a'.repeat(64), blocks: ['XYZ'] }],
    ['(root)', 'not json'],
  ])('refuses an index with a bad %s', (field, value) => {
    const error = thrown(() => parseBlockIndex(typeof value === 'string' ? value : JSON.stringify(value)));
    expect(isProtocolError(error, 'PROTOCOL_BLOCK_INDEX_INVALID')).toBe(true);
    expect((error as { details: { field: string } }).details.field).toBe(field);
  });

  it('refuses block sizes the stream cannot serve', async () => {
    await expect(buildBlockIndex(chunks(data, [10]), 255)).rejects.toMatchObject({
      code: 'PROTOCOL_BLOCK_INDEX_INVALID',
    });
  });
});
