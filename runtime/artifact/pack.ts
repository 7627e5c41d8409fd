import { createHash, randomBytes } from 'node:crypto';
import { constants, createWriteStream } from 'node:fs';
import { lstat, open, rename } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { constants as zlib, createGzip } from 'node:zlib';
import { OutpostError, fromFsError } from '../errors.js';
import { logger } from '../log.js';
import { outputExists, pathExists, removeQuietly, syncDir } from './fs-atomic.js';
import { OPEN_NOFOLLOW, type FileDigest } from './hash.js';
import { MANIFEST_FILE, SIGNATURE_FILE } from './manifest.js';
import { verifyArtifact } from './verify.js';

export interface PackOptions {
  /** Replace an existing archive at the output path. */
  overwrite?: boolean;
}

/** A packed artifact: where, and the digest a fleet puts in the job document so the download can be checked. */
export interface PackedArtifact extends FileDigest {
  path: string;
}

const log = logger('artifact');
const BLOCK = 512; // bytes: the tar block (POSIX.1-2001 ustar)
/**
 * Fixed metadata, so packing the same artifact twice gives the same bytes (reproducible builds; a fleet can
 * deduplicate by hash). Only names and contents vary: mtime 0, uid/gid 0, no user or group names, mode 0644.
 */
const ENTRY_MTIME = new Date(0);
const ENTRY_MODE = 0o644;
const GZIP_LEVEL = zlib.Z_BEST_COMPRESSION;
const GZIP_OS_OFFSET = 9; // RFC 1952 §2.3: the OS byte of the gzip header
const GZIP_OS_UNKNOWN = 255; // RFC 1952 §2.3.1 "unknown": zlib writes the build platform here, which would vary
const READ_CHUNK_BYTES = 1024 * 1024;

/**
 * Packs a verified artifact directory into a deterministic `.tar.gz`: only manifest.json, manifest.sig (when
 * present) and the files the manifest lists, in sorted order, as plain ustar file entries (pax only for names ustar
 * cannot hold), no directory entries, fixed metadata. The directory is verified first (signature aside) so a broken
 * artifact is never shipped. The archive is written to a temp file and renamed into place.
 */
export async function packArtifact(dir: string, tarGzPath: string, options: PackOptions = {}): Promise<PackedArtifact> {
  const output = resolve(tarGzPath);
  const overwrite = options.overwrite ?? false;
  if (!overwrite && (await pathExists(output))) throw outputExists(output);
  const artifact = await verifyArtifact(dir, { requireSignature: false });
  const names = [MANIFEST_FILE, ...Object.keys(artifact.manifest.files)];
  if (await pathExists(join(artifact.dir, SIGNATURE_FILE))) names.push(SIGNATURE_FILE);
  names.sort();

  const temp = join(dirname(output), `.${randomBytes(6).toString('hex')}.tar.gz.tmp`);
  const hash = createHash('sha256');
  let bytes = 0;
  try {
    const measure = new Transform({
      transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
        if (bytes === 0 && chunk.length > GZIP_OS_OFFSET) chunk[GZIP_OS_OFFSET] = GZIP_OS_UNKNOWN;
        hash.update(chunk);
        bytes += chunk.length;
        callback(null, chunk);
      },
    });
    await pipeline(
      Readable.from(tarStream(artifact.dir, names)),
      createGzip({ level: GZIP_LEVEL }),
      measure,
      createWriteStream(temp, { flags: 'wx', mode: 0o644, flush: true }),
    );
    if (!overwrite && (await pathExists(output))) throw outputExists(output);
    await rename(temp, output);
    await syncDir(dirname(output));
  } catch (error) {
    await removeQuietly(temp);
    throw error instanceof OutpostError ? error : fromFsError(error, output, 'write');
  }
  const sha256 = hash.digest('hex');
  log.info({ dir: artifact.dir, path: output, bytes, sha256 }, 'artifact packed');
  return { path: output, sha256, bytes };
}

/** The uncompressed tar stream: per file a header (after a pax header if needed), the data, zero padding. */
async function* tarStream(root: string, names: readonly string[]): AsyncGenerator<Buffer> {
  const { Header, Pax } = await import('tar'); // loaded when packing, not with the artifact module
  for (const name of names) {
    const path = join(root, name);
    const size = (await lstat(path)).size;
    const header = new Header({
      path: name,
      mode: ENTRY_MODE,
      uid: 0,
      gid: 0,
      size,
      mtime: ENTRY_MTIME,
      type: 'File',
      uname: '',
      gname: '',
    });
    const block = Buffer.alloc(BLOCK);
    // ustar holds 100 + 155 ASCII bytes split at a "/"; anything else (long segments, UTF-8) goes in a pax record.
    if (header.encode(block)) yield new Pax({ path: name }).encode();
    yield block;
    yield* fileChunks(path, size);
    const padding = (BLOCK - (size % BLOCK)) % BLOCK;
    if (padding > 0) yield Buffer.alloc(padding);
  }
  yield Buffer.alloc(2 * BLOCK); // end of archive: two zero blocks
}

/** Exactly `size` bytes of the file, or an error if it changed size since the header was written. */
async function* fileChunks(path: string, size: number): AsyncGenerator<Buffer> {
  const handle = await open(path, constants.O_RDONLY | OPEN_NOFOLLOW);
  try {
    let remaining = size;
    while (remaining > 0) {
      const buffer = Buffer.allocUnsafe(Math.min(READ_CHUNK_BYTES, remaining));
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, null);
      if (bytesRead === 0) break;
      remaining -= bytesRead;
      yield buffer.subarray(0, bytesRead);
    }
    if (remaining !== 0 || (await handle.read(Buffer.alloc(1), 0, 1, null)).bytesRead !== 0) {
      throw new OutpostError('ARTIFACT_HASH_MISMATCH', `${path} changed size while being packed`, {
        details: { path },
      });
    }
  } finally {
    await handle.close();
  }
}
