import { createHash, randomBytes } from 'node:crypto';
import { open, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { ArrivalsLog, BlockWriter, InOrderHash } from '../../device-agent/block-writes.js';
import { tmpDir } from '../helpers/tmp.js';

/** The downloader's disk side on real files: pipelined positional writes, batched records, the running digest. */
const BLOCK = 1024; // bytes
const BLOCKS = 12;
const content = randomBytes(BLOCK * BLOCKS);
const block = (b: number) => content.subarray(b * BLOCK, (b + 1) * BLOCK);
const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

/** Writes `order` through a BlockWriter, adding each to `hash`; returns the digest over the written file. */
async function writeInOrder(order: readonly number[], hash: InOrderHash): Promise<string> {
  const path = join(await tmpDir(), 'part');
  const file = await open(path, 'w+');
  try {
    const writer = new BlockWriter(file, BLOCK, 3);
    for (const b of order) {
      await writer.write(b, block(b));
      hash.add(b, block(b));
    }
    await writer.flush();
    expect((await readFile(path)).equals(content)).toBe(true);
    return await hash.digest(file, content.length);
  } finally {
    await file.close();
  }
}

describe('block writes', () => {
  const shuffled = [1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10];
  it.each([
    ['in order', [...Array(BLOCKS).keys()], 4],
    ['swapped pairs, held in memory', shuffled, 4],
    ['reversed, past the hold bound (the rest read from disk)', [...Array(BLOCKS).keys()].reverse(), 4],
    ['with nothing held at all', shuffled, 0],
  ])('the running digest is the file sha256: %s', async (_name, order, maxHeld) => {
    expect(await writeInOrder(order, new InOrderHash(BLOCK, maxHeld))).toBe(sha256(content));
  });

  it('the digest after stop() (a resume) reads the whole file', async () => {
    const hash = new InOrderHash(BLOCK, 4);
    hash.stop();
    expect(await writeInOrder([...Array(BLOCKS).keys()], hash)).toBe(sha256(content));
  });

  it('a write that fails fails the next write or flush', async () => {
    const path = join(await tmpDir(), 'part');
    const file = await open(path, 'w');
    await file.close(); // writes on a closed handle fail (EBADF)
    const writer = new BlockWriter(file, BLOCK, 2);
    await writer.write(0, block(0)).catch(() => undefined);
    await expect(writer.flush()).rejects.toThrow();
  });

  it('arrival records: a full batch at once, the rest on flush, a partial batch after its linger', async () => {
    const path = join(await tmpDir(), 'arrivals.log');
    const file = await open(path, 'a');
    const length = async () => (await readFile(path)).length;
    try {
      const log = new ArrivalsLog(file, 4, 600_000);
      for (let i = 1; i <= 5; i++) log.record(i);
      await vi.waitFor(async () => expect(await length()).toBe(16)); // the full batch; the fifth record waits
      await log.flush();
      expect(await length()).toBe(20);
      const lingering = new ArrivalsLog(file, 4, 20);
      lingering.record(6);
      await vi.waitFor(async () => expect(await length()).toBe(24)); // written by its linger timer, no flush
      const bytes = await readFile(path);
      expect(Array.from({ length: 6 }, (_, i) => bytes.readUInt32LE(4 * i))).toEqual([1, 2, 3, 4, 5, 6]);
    } finally {
      await file.close();
    }
  });
});
