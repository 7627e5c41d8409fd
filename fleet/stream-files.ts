import { type FileHandle, open } from 'node:fs/promises';
import {
  type GetStreamRequest,
  MAX_FILE_ID,
  blockLength,
  maxBlocksPerRequest,
  setBits,
} from '../device-agent/protocol/index.js';
import { OutpostError, fromFsError } from '../runtime/errors.js';

/** A file of a stream, as the streams server reads it: one open handle, blocks read by position. */
export interface StreamFile {
  readonly fileId: number;
  readonly path: string;
}

export interface OpenStreamFile extends StreamFile {
  readonly size: number; // bytes, at open time
  readonly handle: FileHandle;
}

/** Opens a stream's files (ids 0–255, distinct; DescribeStream `f`), all or none. */
export async function openStreamFiles(
  streamId: string,
  files: readonly StreamFile[],
): Promise<ReadonlyMap<number, OpenStreamFile>> {
  const opened = new Map<number, OpenStreamFile>();
  try {
    for (const file of files) {
      if (!Number.isInteger(file.fileId) || file.fileId < 0 || file.fileId > MAX_FILE_ID || opened.has(file.fileId)) {
        throw new OutpostError(
          'INVALID_ARGUMENT',
          `stream ${streamId}: file id ${file.fileId} is invalid or repeated`,
          {
            details: { streamId, fileId: file.fileId, accepted: `distinct integers 0–${MAX_FILE_ID}` },
          },
        );
      }
      opened.set(file.fileId, await openStreamFile(file));
    }
  } catch (error) {
    await closeStreamFiles(opened);
    throw error;
  }
  return opened;
}

export async function closeStreamFiles(files: ReadonlyMap<number, OpenStreamFile>): Promise<void> {
  await Promise.all([...files.values()].map((f) => f.handle.close()));
}

async function openStreamFile(file: StreamFile): Promise<OpenStreamFile> {
  let handle: FileHandle;
  try {
    handle = await open(file.path, 'r');
  } catch (error) {
    throw fromFsError(error, file.path, 'read');
  }
  try {
    const info = await handle.stat();
    if (!info.isFile()) {
      throw new OutpostError('FILE_UNREADABLE', `${file.path} is not a regular file`, { details: { path: file.path } });
    }
    return { fileId: file.fileId, path: file.path, size: info.size, handle };
  } catch (error) {
    await handle.close();
    throw error;
  }
}

/**
 * Block `block` of `blockSize` bytes, read with one positional read into a buffer of exactly its length (`into`,
 * when given: a data message's payload, so the block is read where it is sent from): serving a block of a 10 GB file
 * costs the block, not the file.
 */
export async function readBlock(
  file: OpenStreamFile,
  blockSize: number,
  block: number,
  into?: Buffer,
): Promise<Buffer> {
  const length = blockLength(file.size, blockSize, block);
  if (into !== undefined && into.length !== length) {
    throw new OutpostError('INTERNAL', `block ${block} is ${length} bytes, not ${into.length}`);
  }
  const payload = into ?? Buffer.allocUnsafe(length);
  let filled = 0;
  while (filled < length) {
    const { bytesRead } = await file.handle.read(payload, filled, length - filled, block * blockSize + filled);
    if (bytesRead === 0) {
      throw new OutpostError('FILE_UNREADABLE', `${file.path} is shorter than when it was opened`, {
        details: { path: file.path, expectedBytes: file.size },
      });
    }
    filled += bytesRead;
  }
  return payload;
}

/**
 * The blocks one GetStream request yields (mqtt-based-file-delivery-in-devices, "Build a bitmap"): with a bitmap, the
 * set bits counted from `o`; without, consecutive blocks from `o`. Blocks past the end are ignored. At most `n` (when
 * `n` is 0 or absent, "it defaults to 131072/DataBlockSize"), and never more than `budgetBytes` of payload: the
 * service "will send additional blocks as your device makes additional requests".
 */
export function selectBlocks(request: GetStreamRequest, totalBlocks: number, budgetBytes: number): number[] {
  const offset = request.o ?? 0;
  const cap = Math.min(
    request.n !== undefined && request.n > 0 ? request.n : maxBlocksPerRequest(request.l),
    maxBlocksPerRequest(request.l, budgetBytes),
  );
  const blocks: number[] = [];
  if (request.b === undefined) {
    for (let block = offset; block < totalBlocks && blocks.length < cap; block++) blocks.push(block);
    return blocks;
  }
  for (const bit of setBits(request.b)) {
    if (offset + bit >= totalBlocks || blocks.length >= cap) break;
    blocks.push(offset + bit);
  }
  return blocks;
}
