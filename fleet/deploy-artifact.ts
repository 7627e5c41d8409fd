import { randomBytes } from 'node:crypto';
import { copyFile, mkdtemp, open, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import {
  type JobDocument,
  DELIVERY_INDEX_FILE_ID,
  DEFAULT_BLOCK_SIZE,
  JOB_ID_PATTERN,
  buildBlockIndexFromFile,
  createJobDocument,
  encodeBlockIndex,
} from '../device-agent/protocol/index.js';
import { openArtifact, packArtifact, sha256Bytes, sha256File, type Manifest } from '../runtime/artifact/index.js';
import { OutpostError, fromFsError } from '../runtime/errors.js';
import { BARE_MODEL_SUFFIXES, isBareModelPath, wrapBareModel } from '../runtime/model/index.js';
import { logger } from '../runtime/log.js';
import { type DeliveryFiles, MAX_DELIVERY_FILES, prepareDeliveryFiles } from './delivery-files.js';
import { withOutpostErrors } from './protocol-errors.js';
import type { StreamFile } from './stream-files.js';

/**
 * Turns an artifact (directory or `.tar.gz`) into what a deployment serves: the verified `.tar.gz`, its block-hash
 * index, and the job document naming both. The stream layout is fixed: file 0 is the index, file 1 the archive
 * (docs/job-document.md), so a device can fetch and check the small index before the first block of the archive.
 */
export const INDEX_FILE_ID = 0;
export const ARCHIVE_FILE_ID = 1;
export const STREAM_VERSION = 1;

export interface PrepareOptions {
  readonly artifact: string;
  /** Default `deploy-<model>-<version>-<6 hex>`: the deployment uses it as job id and stream id alike. */
  readonly streamId?: string;
  readonly blockSize?: number; // bytes, default 64 KiB (protocol/limits.ts)
  readonly keepVersions?: number;
  /** How the devices put the new version into service (job document `rollout`); default replace. */
  readonly rollout?: JobDocument['rollout'];
  readonly notes?: string;
  /** A bare model is wrapped into an artifact signed with this ed25519 key (PEM text or path); else unsigned. */
  readonly signingKey?: string;
  /** Public keys (PEM text or paths): when given, the artifact must carry a signature by one of them. */
  readonly trustedKeys?: readonly string[];
  /** Parent of the deployment's scratch directory; default the OS temp directory. */
  readonly workDir?: string;
  /**
   * `archive` (default): one `.tar.gz` and its block index, the form AWS IoT Core streams from S3 as prepared here.
   * `files`: the delivery index and one stream file per artifact file (delivery-files.ts), so each device fetches
   * only what it will run. `both` (what the fleet store keeps): the archive layout's document and stream files, and
   * `delivery` as well when the artifact fits the files layout (at most 255 files).
   */
  readonly layout?: 'archive' | 'files' | 'both';
}

export interface PreparedArtifact {
  /** The packed archive (archive layout), also made for the files layout (the fleet store keeps archives). */
  readonly archivePath: string;
  /** The block index (archive layout) or the delivery index (files layout). */
  readonly indexPath: string;
  /** What the stream serves, by file id: what the job document names. */
  readonly streamFiles: readonly StreamFile[];
  readonly document: JobDocument;
  readonly manifest: Pick<Manifest, 'name' | 'version' | 'target'>;
  /** sha256 of manifest.json as verified (runtime/artifact manifestDigest). */
  readonly manifestSha256: string;
  /** The scratch directory (packed archive, index); `dispose` removes it. */
  readonly scratch: string;
  /** The files layout's delivery index and stream files (layouts `files`, and `both` when the artifact fits it). */
  readonly delivery?: DeliveryFiles;
}

const log = logger('fleet.deploy');

/**
 * Verifies the artifact before anything is shipped (signature when keys are given, every file's hash), packs a
 * directory into a deterministic `.tar.gz`, and builds the index while streaming the archive once.
 */
export async function prepareArtifact(options: PrepareOptions): Promise<PreparedArtifact> {
  const parent = options.workDir ?? tmpdir();
  let scratch: string;
  try {
    scratch = await mkdtemp(join(parent, 'outpost-deploy-'));
  } catch (error) {
    throw fromFsError(error, parent, 'write');
  }
  try {
    const source = resolve(options.artifact);
    const kind = await sourceKind(source);
    if (options.signingKey !== undefined && kind !== 'model') {
      throw new OutpostError(
        'INVALID_ARGUMENT',
        `a signing key signs the artifact a plain model is wrapped into; ${options.artifact} is an artifact already (sign it when compiling it)`,
        { details: { path: options.artifact } },
      );
    }
    // A bare model becomes a one-variant artifact first (as loadModel treats it), then ships like any other.
    const wrapped =
      kind === 'model'
        ? (
            await wrapBareModel(source, join(scratch, 'wrapped'), {
              ...(options.signingKey === undefined ? {} : { signingKey: options.signingKey }),
            })
          ).dir
        : undefined;
    const isDirectory = kind === 'directory' || wrapped !== undefined;
    // An archive is copied first and the copy verified, hashed and served: the file verified is the file shipped.
    const input = wrapped ?? (kind === 'directory' ? source : join(scratch, 'artifact.tar.gz'));
    if (kind === 'archive')
      await copyFile(source, input).catch((error: unknown) => Promise.reject(fromFsError(error, source, 'read')));
    // openArtifact verifies (and for an archive unpacks privately and checks every entry); nothing unverified ships.
    // Its errors name the user's file, not the private copy.
    const opened = await openArtifact(input, {
      ...(options.trustedKeys === undefined ? {} : { trustedKeys: options.trustedKeys }),
      workDir: scratch,
    }).catch((error: unknown) => {
      throw naming(error, scratch, options.artifact);
    });
    const { name, version, target } = opened.manifest;
    const { manifestSha256 } = opened;
    const blockSize = options.blockSize ?? DEFAULT_BLOCK_SIZE;
    let archive: { path: string; sha256: string; bytes: number };
    let delivery: DeliveryFiles | undefined;
    try {
      archive = isDirectory
        ? await packArtifact(opened.dir, join(scratch, `${name}-${version}.tar.gz`))
        : { path: input, ...(await sha256File(input)) };
      const fits = Object.keys(opened.manifest.files).length <= MAX_DELIVERY_FILES;
      if (options.layout === 'files' || (options.layout === 'both' && fits)) {
        delivery = await prepareDeliveryFiles(opened.dir, opened.manifest, scratch, blockSize);
      } else if (options.layout === 'both') {
        log.warn(
          { name, version, files: Object.keys(opened.manifest.files).length },
          'too many files for the files layout: archive only',
        );
      }
    } finally {
      await opened.dispose();
    }
    const streamId = options.streamId ?? defaultStreamId(name, version);
    const common = {
      model: { name, version },
      target: { arch: target.arch },
      ...(options.keepVersions === undefined ? {} : { keepVersions: options.keepVersions }),
      ...(options.rollout === undefined ? {} : { rollout: options.rollout }),
      ...(options.notes === undefined ? {} : { notes: options.notes }),
    };
    if (delivery !== undefined && options.layout === 'files') {
      const { indexBytes, indexPath, files, totalBytes } = delivery;
      const document = await withOutpostErrors(() =>
        createJobDocument({
          ...common,
          artifact: {
            streamId,
            streamVersion: STREAM_VERSION,
            layout: 'files',
            indexFileId: DELIVERY_INDEX_FILE_ID,
            size: Math.max(1, totalBytes),
            indexSize: indexBytes.length,
            indexSha256: sha256Bytes(indexBytes),
            blockSize,
            manifestSha256,
          },
        }),
      );
      log.info({ name, version, bytes: totalBytes, files: files.length - 1, blockSize }, 'artifact prepared (files)');
      const manifest = { name, version, target };
      return {
        archivePath: archive.path,
        indexPath,
        streamFiles: files,
        document,
        manifest,
        manifestSha256,
        scratch,
        delivery,
      };
    }

    const index = await withOutpostErrors(() => buildBlockIndexFromFile(archive.path, blockSize));
    const indexBytes = encodeBlockIndex(index);
    const indexPath = join(scratch, 'index.json');
    try {
      await writeFile(indexPath, indexBytes);
    } catch (error) {
      throw fromFsError(error, indexPath, 'write');
    }
    const document = await withOutpostErrors(() =>
      createJobDocument({
        ...common,
        artifact: {
          streamId,
          streamVersion: STREAM_VERSION,
          fileId: ARCHIVE_FILE_ID,
          indexFileId: INDEX_FILE_ID,
          size: archive.bytes,
          sha256: archive.sha256,
          indexSize: indexBytes.length,
          indexSha256: sha256Bytes(indexBytes),
          blockSize,
        },
      }),
    );
    log.info({ name, version, bytes: archive.bytes, blocks: index.blocks.length, blockSize }, 'artifact prepared');
    return {
      archivePath: archive.path,
      indexPath,
      streamFiles: [
        { fileId: INDEX_FILE_ID, path: indexPath },
        { fileId: ARCHIVE_FILE_ID, path: archive.path },
      ],
      document,
      manifest: { name, version, target },
      manifestSha256,
      scratch,
      ...(delivery === undefined ? {} : { delivery }),
    };
  } catch (error) {
    await rm(scratch, { recursive: true, force: true });
    throw error;
  }
}

/** What the user gave: an artifact directory, an artifact archive (gzip), or a bare `.onnx`/`.ort` model. */
async function sourceKind(path: string): Promise<'directory' | 'archive' | 'model'> {
  let handle;
  try {
    if ((await stat(path)).isDirectory()) return 'directory';
    handle = await open(path, 'r');
    const head = Buffer.alloc(2);
    await handle.read(head, 0, 2, 0);
    if (head[0] === 0x1f && head[1] === 0x8b) return 'archive'; // gzip magic (RFC 1952 §2.3.1)
  } catch (error) {
    throw fromFsError(error, path, 'read');
  } finally {
    await handle?.close();
  }
  if (isBareModelPath(path)) return 'model';
  throw new OutpostError(
    'INVALID_ARGUMENT',
    `${path} is neither an artifact (a directory or a .tar.gz) nor a model (${BARE_MODEL_SUFFIXES.join(', ')})`,
    { details: { path, accepted: ['directory', '.tar.gz', ...BARE_MODEL_SUFFIXES] } },
  );
}

/** An error about the private scratch copy, reworded to name the file the user gave. */
function naming(error: unknown, scratch: string, given: string): Error {
  if (!(error instanceof Error)) return new OutpostError('INTERNAL', String(error));
  if (!(error instanceof OutpostError) || !error.message.includes(scratch)) return error;
  const message = error.message.replace(new RegExp(`${escapeRegExp(scratch)}[^\\s:;,'"]*`, 'g'), given);
  return new OutpostError(error.code, message, { cause: error, retryable: error.retryable, details: error.details });
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** `deploy-<model>-<version>-<6 hex>`, squeezed into the job id pattern (1–64 of [a-zA-Z0-9_-]). */
export function defaultStreamId(name: string, version: string): string {
  const suffix = randomBytes(3).toString('hex');
  const stem = `deploy-${name}-${version}`.replace(/[^a-zA-Z0-9_-]/g, '-');
  const id = `${stem.slice(0, 64 - suffix.length - 1)}-${suffix}`;
  return JOB_ID_PATTERN.test(id) ? id : `deploy-${suffix}`;
}
