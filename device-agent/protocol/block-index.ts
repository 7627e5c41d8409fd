import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import * as z from 'zod';
import { ProtocolError, fieldPath } from './errors.js';
import { MAX_BLOCK_SIZE, MIN_BLOCK_SIZE } from './limits.js';

/**
 * The block-hash index: Outpost's addition to MQTT-based file delivery, carried as its own file in the stream
 * (job document `artifact.indexFileId`). It lists the sha256 of every block of the artifact, so the device checks
 * each block as it arrives, writes only good ones, and asks again (by bitmap) for a block that arrived corrupted,
 * instead of discovering at the end that a 500 MB download is bad somewhere. The index itself is checked against
 * `artifact.indexSha256` from the job document before it is trusted.
 *
 *   { "algorithm": "sha256", "blockSize": 65536, "size": 1234567, "sha256": "<whole file>", "blocks": ["<hex>", …] }
 *
 * Block `i` is bytes [i·blockSize, min((i+1)·blockSize, size)); every block is blockSize long except the last.
 */
export const BLOCK_INDEX_ALGORITHM = 'sha256';

const hex64 = z.string().regex(/^[0-9a-f]{64}$/, '64 lowercase hex characters');

export const blockIndexSchema = z
  .strictObject({
    algorithm: z.literal(BLOCK_INDEX_ALGORITHM),
    blockSize: z.number().int().min(MIN_BLOCK_SIZE).max(MAX_BLOCK_SIZE),
    size: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
    sha256: hex64,
    blocks: z.array(hex64),
  })
  .refine((index) => index.blocks.length === blockCount(index.size, index.blockSize), {
    message: 'blocks must list exactly ⌈size / blockSize⌉ hashes',
    path: ['blocks'],
  });
export type BlockIndex = z.infer<typeof blockIndexSchema>;

export function blockCount(size: number, blockSize: number): number {
  return Math.ceil(size / blockSize);
}

/** Bytes in block `block` of a file of `size` bytes: blockSize, except for the last block; 0 past the end. */
export function blockLength(size: number, blockSize: number, block: number): number {
  return Math.max(0, Math.min(blockSize, size - block * blockSize));
}

/**
 * Builds the index from a byte stream, hashing blocks as they fill: memory stays at one block whatever the size.
 * The stream's chunks may be of any size.
 */
export async function buildBlockIndex(source: AsyncIterable<Uint8Array>, blockSize: number): Promise<BlockIndex> {
  if (!Number.isInteger(blockSize) || blockSize < MIN_BLOCK_SIZE || blockSize > MAX_BLOCK_SIZE) {
    throw new ProtocolError(
      'PROTOCOL_BLOCK_INDEX_INVALID',
      `block size ${blockSize} is outside ${MIN_BLOCK_SIZE}–${MAX_BLOCK_SIZE}`,
      {
        details: { field: 'blockSize', value: blockSize },
      },
    );
  }
  const whole = createHash('sha256');
  const blocks: string[] = [];
  let block = createHash('sha256');
  let filled = 0;
  let size = 0;
  for await (const chunk of source) {
    whole.update(chunk);
    size += chunk.length;
    let at = 0;
    while (at < chunk.length) {
      const take = Math.min(blockSize - filled, chunk.length - at);
      block.update(chunk.subarray(at, at + take));
      filled += take;
      at += take;
      if (filled === blockSize) {
        blocks.push(block.digest('hex'));
        block = createHash('sha256');
        filled = 0;
      }
    }
  }
  if (filled > 0) blocks.push(block.digest('hex'));
  return { algorithm: BLOCK_INDEX_ALGORITHM, blockSize, size, sha256: whole.digest('hex'), blocks };
}

/** buildBlockIndex over a file, read in block-sized chunks. */
export function buildBlockIndexFromFile(path: string, blockSize: number): Promise<BlockIndex> {
  return buildBlockIndex(createReadStream(path, { highWaterMark: blockSize }), blockSize);
}

/** Whether `bytes` is block `block` of the indexed file: its length and its sha256. */
export function verifyBlock(index: BlockIndex, block: number, bytes: Uint8Array): boolean {
  const expected = index.blocks[block];
  if (expected === undefined) return false;
  if (bytes.length !== blockLength(index.size, index.blockSize, block)) return false;
  return createHash('sha256').update(bytes).digest('hex') === expected;
}

/** The index file's bytes: compact JSON, keys in schema order, so the same file always gives the same bytes. */
export function encodeBlockIndex(index: BlockIndex): Buffer {
  const { algorithm, blockSize, size, sha256, blocks } = index;
  return Buffer.from(JSON.stringify({ algorithm, blockSize, size, sha256, blocks }), 'utf8');
}

/** Reads and validates an index file; throws PROTOCOL_BLOCK_INDEX_INVALID naming the field. */
export function parseBlockIndex(bytes: Uint8Array | string): BlockIndex {
  let json: unknown;
  try {
    json = JSON.parse(typeof bytes === 'string' ? bytes : Buffer.from(bytes).toString('utf8'));
  } catch (error) {
    throw new ProtocolError('PROTOCOL_BLOCK_INDEX_INVALID', `block index is not JSON: ${(error as Error).message}`, {
      cause: error,
      details: { field: '(root)' },
    });
  }
  const parsed = blockIndexSchema.safeParse(json);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  const field = issue === undefined ? '(root)' : fieldPath(issue.path);
  throw new ProtocolError(
    'PROTOCOL_BLOCK_INDEX_INVALID',
    `block index field ${field}: ${issue?.message ?? 'invalid'}`,
    {
      details: { field },
    },
  );
}
