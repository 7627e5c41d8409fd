import { randomBytes } from 'node:crypto';
import { open, type FileHandle } from 'node:fs/promises';
import type { TensorProto } from 'onnx-buf';
import { fromFsError } from '../../runtime/errors.js';
import { openForRead, readFully } from './external-data.js';
import { tensorBytes } from './tensor.js';

/**
 * The file side of saving: streaming tensor bytes into a new external data file (from memory, or copied range by
 * range from the file a lazy tensor still lives in), writing the model bytes, and making both durable.
 */
const COPY_CHUNK = 16 * 1024 * 1024; // bytes read and written per step when copying external data between files
const WRITE_CHUNK = 1024 * 1024 * 1024; // bytes per write call (fs refuses single writes over 2 GiB)

export function tempName(path: string): string {
  return `${path}.${process.pid}-${randomBytes(4).toString('hex')}.tmp`;
}

export async function writeFully(handle: FileHandle, bytes: Uint8Array, position: number, path: string): Promise<void> {
  let done = 0;
  while (done < bytes.length) {
    const length = Math.min(WRITE_CHUNK, bytes.length - done);
    try {
      const { bytesWritten } = await handle.write(bytes, done, length, position + done);
      done += bytesWritten;
    } catch (error) {
      throw fromFsError(error, path, 'write');
    }
  }
}

/** Where a tensor's bytes went in the new data file. */
export interface Written {
  offset: number; // bytes
  length: number; // bytes
}

/** What happens to one tensor in the saved model. */
export interface Placement {
  tensor: TensorProto;
  /** Where its bytes are now, when on disk (lazy external tensor). */
  source: { path: string; offset: number; length: number } | undefined;
  external: boolean;
}

async function copyRange(
  from: { handle: FileHandle; path: string; offset: number },
  to: { handle: FileHandle; path: string; offset: number },
  length: number,
  buffer: Uint8Array,
): Promise<void> {
  for (let done = 0; done < length; done += buffer.length) {
    const chunk = buffer.subarray(0, Math.min(buffer.length, length - done));
    await readFully(from.handle, chunk, from.offset + done, from.path);
    await writeFully(to.handle, chunk, to.offset + done, to.path);
  }
}

/** Streams every external placement into `dataPath`'s temp file; returns each tensor's offset. */
export async function writeDataFile(
  placements: readonly Placement[],
  tempPath: string,
  alignment: number,
  durable: boolean,
): Promise<{ written: Map<TensorProto, Written>; bytes: number }> {
  const written = new Map<TensorProto, Written>();
  const sources = new Map<string, FileHandle>();
  let out: FileHandle;
  try {
    out = await open(tempPath, 'wx');
  } catch (error) {
    throw fromFsError(error, tempPath, 'write');
  }
  let end = 0;
  try {
    const buffer = new Uint8Array(COPY_CHUNK);
    for (const { tensor, source, external } of placements) {
      if (!external) continue;
      // [ExternalData.md] offsets SHOULD be page multiples for mmap; the gap is a hole that reads as zeros.
      const offset = Math.ceil(end / alignment) * alignment;
      let length: number;
      if (source === undefined) {
        const bytes = tensorBytes(tensor);
        await writeFully(out, bytes, offset, tempPath);
        length = bytes.length;
      } else {
        let handle = sources.get(source.path);
        if (handle === undefined) {
          handle = await openForRead(source.path, tensor);
          sources.set(source.path, handle);
        }
        const from = { handle, path: source.path, offset: source.offset };
        await copyRange(from, { handle: out, path: tempPath, offset }, source.length, buffer);
        length = source.length;
      }
      written.set(tensor, { offset, length });
      end = offset + length;
    }
    await out.truncate(end);
    if (durable) await out.sync();
  } finally {
    await out.close();
    await Promise.all([...sources.values()].map((h) => h.close()));
  }
  return { written, bytes: end };
}

export async function writeModelFile(bytes: Uint8Array, tempPath: string, durable: boolean): Promise<void> {
  let handle: FileHandle;
  try {
    handle = await open(tempPath, 'wx');
  } catch (error) {
    throw fromFsError(error, tempPath, 'write');
  }
  try {
    await writeFully(handle, bytes, 0, tempPath);
    if (durable) await handle.sync();
  } finally {
    await handle.close();
  }
}
