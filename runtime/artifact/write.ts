import { createHash, type KeyObject } from 'node:crypto';
import { mkdir, open, type FileHandle } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { OutpostError, fromFsError } from '../errors.js';
import { logger } from '../log.js';
import { prettyJson } from './canonical.js';
import { makeStagingDir, outputExists, pathExists, publishDir, removeQuietly, syncDir } from './fs-atomic.js';
import type { FileDigest } from './hash.js';
import { keyId, loadPrivateKey } from './keys.js';
import {
  MANIFEST_FILE,
  SCHEMA_VERSION,
  SIGNATURE_FILE,
  relativePathSchema,
  type Manifest,
  type ManifestInput,
} from './manifest.js';
import { validateManifest } from './parse.js';
import { signManifest } from './signature.js';

/** A variant as the compiler describes it; `sha256` and `bytes` are measured here from the file written. */
export type VariantDraft = Omit<ManifestInput['variants'][number], 'sha256' | 'bytes'>;

/** The manifest minus what writing measures (`files`, variant hashes) or can default (`schemaVersion`, `createdAt`). */
export type ManifestDraft = Omit<ManifestInput, 'files' | 'variants' | 'schemaVersion' | 'createdAt'> & {
  schemaVersion?: number;
  /** ISO 8601 UTC; defaults to now. */
  createdAt?: string;
  variants: VariantDraft[];
};

export interface ArtifactFileSource {
  /** Where the file goes inside the artifact, e.g. `variants/model.int8.onnx`. */
  path: string;
  /** A file to copy, or the content itself. */
  from: string | Uint8Array;
}

export interface WriteArtifactOptions {
  manifest: ManifestDraft;
  files: readonly ArtifactFileSource[];
  /** ed25519 private key (KeyObject, PEM, or path to a PEM); without it the artifact is unsigned. */
  signingKey?: KeyObject | string;
  /** Replace an existing `outDir` (atomically: old until the rename, new after). */
  overwrite?: boolean;
}

export interface WrittenArtifact {
  dir: string;
  manifest: Manifest;
  /** Key id of the signing key, when signed. */
  signer?: string;
}

const log = logger('artifact');
const COPY_CHUNK_BYTES = 1024 * 1024; // bytes per read/write while copying and hashing
const FILE_MODE = 0o644; // artifacts are world-readable data; nothing in them is secret

/**
 * Writes a complete artifact to `outDir`: copies every file into a staging directory beside it, hashing the bytes as
 * they are written (the hash covers what is in the artifact, not what the source was a moment earlier), fills in
 * `files` and each variant's `sha256`/`bytes`, validates the manifest exactly as a device will, signs it, fsyncs,
 * and renames the staging directory into place. On any failure the staging directory is removed and `outDir` is
 * untouched.
 */
export async function writeArtifact(outDir: string, options: WriteArtifactOptions): Promise<WrittenArtifact> {
  const dir = resolve(outDir);
  const overwrite = options.overwrite ?? false;
  // Fail before copying gigabytes; publishDir checks again at the rename.
  if (!overwrite && (await pathExists(dir))) throw outputExists(dir);
  checkSources(options.files);
  const privateKey = options.signingKey === undefined ? undefined : await loadPrivateKey(options.signingKey);

  const staging = await makeStagingDir(dir);
  try {
    const digests = new Map<string, FileDigest>();
    const dirs = new Set<string>([staging]);
    for (const source of options.files) {
      const target = join(staging, source.path);
      await makeDirs(dirname(target), staging, dirs);
      digests.set(source.path, await copyHashed(source.from, target));
    }
    const manifest = validateManifest(buildManifest(options.manifest, digests));
    const manifestText = prettyJson(manifest);
    await writeNewFile(join(staging, MANIFEST_FILE), manifestText);
    if (privateKey !== undefined)
      await writeNewFile(join(staging, SIGNATURE_FILE), signManifest(manifestText, privateKey));
    // Children before parents, so each directory's new entries are durable before the name that leads to it.
    for (const created of [...dirs].sort().reverse()) await syncDir(created);
    await publishDir(staging, dir, overwrite);
    const signer = privateKey === undefined ? undefined : keyId(privateKey);
    log.info({ dir, name: manifest.name, version: manifest.version, signer }, 'artifact written');
    return signer === undefined ? { dir, manifest } : { dir, manifest, signer };
  } catch (error) {
    await removeQuietly(staging);
    throw error;
  }
}

function checkSources(files: readonly ArtifactFileSource[]): void {
  const seen = new Map<string, string>();
  for (const { path } of files) {
    const parsed = relativePathSchema.safeParse(path);
    if (!parsed.success) {
      throw new OutpostError(
        'INVALID_ARGUMENT',
        `artifact file path "${path}": ${parsed.error.issues[0]?.message ?? 'invalid'}`,
        {
          details: { path },
        },
      );
    }
    if (path === MANIFEST_FILE || path === SIGNATURE_FILE) {
      throw new OutpostError('INVALID_ARGUMENT', `artifact file path "${path}" is reserved; writeArtifact writes it`, {
        details: { path },
      });
    }
    // Case-folded: two names differing only in case are one file on macOS and Windows.
    const clash = seen.get(path.toLowerCase());
    if (clash !== undefined) {
      throw new OutpostError('INVALID_ARGUMENT', `artifact file path "${path}" is given twice (as "${clash}")`, {
        details: { path },
      });
    }
    seen.set(path.toLowerCase(), path);
  }
}

function buildManifest(draft: ManifestDraft, digests: ReadonlyMap<string, FileDigest>): ManifestInput {
  const variants = draft.variants.map((variant, i) => {
    const digest = digests.get(variant.file);
    if (digest === undefined) {
      throw new OutpostError(
        'INVALID_ARGUMENT',
        `variants[${i}].file "${variant.file}" is not among the files given; given: ${[...digests.keys()].join(', ')}`,
        { details: { path: `variants[${i}].file`, file: variant.file } },
      );
    }
    return { ...variant, sha256: digest.sha256, bytes: digest.bytes };
  });
  const files = Object.fromEntries([...digests.entries()].sort(([a], [b]) => (a < b ? -1 : 1)));
  return {
    ...draft,
    schemaVersion: draft.schemaVersion ?? SCHEMA_VERSION,
    createdAt: draft.createdAt ?? new Date().toISOString(),
    variants,
    files,
  };
}

/** mkdir -p inside the staging tree, remembering each directory so it can be fsynced. */
async function makeDirs(dir: string, root: string, created: Set<string>): Promise<void> {
  try {
    await mkdir(dir, { recursive: true });
  } catch (error) {
    throw fromFsError(error, dir, 'write');
  }
  for (let d = dir; d.length > root.length && !created.has(d); d = dirname(d)) created.add(d);
}

async function copyHashed(from: string | Uint8Array, target: string): Promise<FileDigest> {
  const hash = createHash('sha256');
  let bytes = 0;
  const out = await openNew(target);
  try {
    if (typeof from !== 'string') {
      await writeAll(out, from, target);
      hash.update(from);
      bytes = from.byteLength;
    } else {
      let input: FileHandle;
      try {
        input = await open(from, 'r');
      } catch (error) {
        throw fromFsError(error, from, 'read');
      }
      try {
        const buffer = Buffer.allocUnsafe(COPY_CHUNK_BYTES);
        for (;;) {
          const { bytesRead } = await input.read(buffer, 0, buffer.length, null).catch((error: unknown) => {
            throw fromFsError(error, from, 'read');
          });
          if (bytesRead === 0) break;
          const chunk = buffer.subarray(0, bytesRead);
          hash.update(chunk);
          await writeAll(out, chunk, target);
          bytes += bytesRead;
        }
      } finally {
        await input.close();
      }
    }
    await out.sync().catch((error: unknown) => {
      throw fromFsError(error, target, 'write');
    });
  } finally {
    await out.close();
  }
  return { sha256: hash.digest('hex'), bytes };
}

async function writeNewFile(target: string, content: string): Promise<void> {
  const out = await openNew(target);
  try {
    await writeAll(out, Buffer.from(content, 'utf8'), target);
    await out.sync().catch((error: unknown) => {
      throw fromFsError(error, target, 'write');
    });
  } finally {
    await out.close();
  }
}

/** 'wx': the staging directory is ours and fresh, so an existing file means a bug or an intruder, never a merge. */
async function openNew(target: string): Promise<FileHandle> {
  try {
    return await open(target, 'wx', FILE_MODE);
  } catch (error) {
    throw fromFsError(error, target, 'write');
  }
}

async function writeAll(out: FileHandle, data: Uint8Array, target: string): Promise<void> {
  let offset = 0;
  while (offset < data.byteLength) {
    try {
      const { bytesWritten } = await out.write(data, offset, data.byteLength - offset, null);
      offset += bytesWritten;
    } catch (error) {
      throw fromFsError(error, target, 'write'); // ENOSPC → DISK_FULL
    }
  }
}
