import { rm } from 'node:fs/promises';
import { DEFAULT_BLOCK_SIZE, DELIVERY_INDEX_FILE_ID } from '../../device-agent/protocol/index.js';
import { OutpostError } from '../../runtime/errors.js';
import { logger } from '../../runtime/log.js';
import type { DeliveryFiles } from '../delivery-files.js';
import { ARCHIVE_FILE_ID, prepareArtifact } from '../deploy-artifact.js';
import type { ArtifactRecord, DeliveryStreamRecord, FleetStore, StreamFileRecord } from '../store/index.js';
import type { BlobStore } from './blobs.js';

const log = logger('fleet.artifacts');

/** Stream ids are content-addressed too: the same artifact is one stream whatever deploys it. */
export function streamIdOf(sha256: string): string {
  return `art-${sha256.slice(0, 40)}`;
}

/** The artifact's files-layout stream (docs/job-document.md, "Stream layouts"): a second stream of the same artifact. */
export function deliveryStreamIdOf(sha256: string): string {
  return `${streamIdOf(sha256)}-files`;
}

export interface IngestOptions {
  /** An artifact directory or .tar.gz (an upload saved to disk). */
  readonly source: string;
  readonly blobs: BlobStore;
  readonly store: FleetStore;
  /** Public keys (PEM text or paths): when given, the artifact must be signed by one of them. */
  readonly trustedKeys?: readonly string[];
  readonly blockSize?: number; // bytes, default 64 KiB
  /** Scratch space for verification (on the data directory's filesystem, so blobs are renamed, not copied twice). */
  readonly workDir: string;
  readonly nowMs: number;
}

/**
 * Verifies an artifact exactly as `outpost deploy` does (prepareArtifact: hashes, signature when keys are given,
 * archive entries), then stores by sha256 what both stream layouts serve: the archive and its block index, and the
 * delivery index and every artifact file (each its own blob, so variants shared by two artifacts are stored once),
 * and records it. Nothing is recorded unless verification passed: a refused artifact leaves no row.
 */
export async function ingestArtifact(options: IngestOptions): Promise<ArtifactRecord> {
  const prepared = await prepareArtifact({
    artifact: options.source,
    workDir: options.workDir,
    blockSize: options.blockSize ?? DEFAULT_BLOCK_SIZE,
    layout: 'both',
    ...(options.trustedKeys === undefined || options.trustedKeys.length === 0
      ? {}
      : { trustedKeys: options.trustedKeys }),
  });
  try {
    const archive = await options.blobs.put(prepared.archivePath);
    const index = await options.blobs.put(prepared.indexPath);
    const delivery =
      prepared.delivery === undefined ? undefined : await storeDelivery(prepared.delivery, options.blobs);
    const { name, version, target } = prepared.manifest;
    const record = await options.store.putArtifact({
      sha256: archive.sha256,
      name,
      version,
      target: { profile: target.profile, arch: target.arch },
      bytes: archive.bytes,
      blockSize: prepared.document.artifact.blockSize,
      streamId: streamIdOf(archive.sha256),
      streamVersion: 1,
      // The stream's file table, from what the artifact is made of (docs/job-document.md: file 0 the index, 1 the archive).
      files: [
        { fileId: prepared.document.artifact.indexFileId, sha256: index.sha256, bytes: index.bytes, role: 'index' },
        { fileId: ARCHIVE_FILE_ID, sha256: archive.sha256, bytes: archive.bytes, role: 'archive' },
      ],
      createdMs: options.nowMs,
      manifestSha256: prepared.manifestSha256,
      ...(delivery === undefined ? {} : { delivery: { ...delivery, streamId: deliveryStreamIdOf(archive.sha256) } }),
    });
    log.info(
      { sha256: record.sha256, name, version, target: record.target.profile, bytes: record.bytes },
      'artifact stored',
    );
    return record;
  } finally {
    await rm(prepared.scratch, { recursive: true, force: true });
  }
}

/** The delivery index and each artifact file as blobs; a stored file must hash to what the signed manifest says. */
async function storeDelivery(
  delivery: DeliveryFiles,
  blobs: BlobStore,
): Promise<Omit<DeliveryStreamRecord, 'streamId'>> {
  const index = await blobs.put(delivery.indexPath);
  const files: StreamFileRecord[] = [
    { fileId: DELIVERY_INDEX_FILE_ID, sha256: index.sha256, bytes: index.bytes, role: 'delivery' },
  ];
  for (const entry of delivery.entries) {
    const source = delivery.files.find((f) => f.fileId === entry.fileId);
    if (source === undefined) throw new OutpostError('INTERNAL', `no stream file ${entry.fileId} for ${entry.path}`);
    const stored = await blobs.put(source.path);
    if (stored.sha256 !== entry.sha256 || stored.bytes !== entry.size) {
      throw new OutpostError('ARTIFACT_HASH_MISMATCH', `${entry.path} changed while it was being stored`, {
        details: { path: entry.path, expected: entry.sha256, actual: stored.sha256 },
      });
    }
    files.push({ fileId: entry.fileId, sha256: stored.sha256, bytes: stored.bytes, role: 'file', path: entry.path });
  }
  return { files, bytes: delivery.totalBytes };
}
