import { rm } from 'node:fs/promises';
import { DEFAULT_BLOCK_SIZE } from '../../device-agent/protocol/index.js';
import { logger } from '../../runtime/log.js';
import { ARCHIVE_FILE_ID, prepareArtifact } from '../deploy-artifact.js';
import type { ArtifactRecord, FleetStore } from '../store/index.js';
import type { BlobStore } from './blobs.js';

const log = logger('fleet.artifacts');

/** Stream ids are content-addressed too: the same artifact is one stream whatever deploys it. */
export function streamIdOf(sha256: string): string {
  return `art-${sha256.slice(0, 40)}`;
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
 * archive entries), then stores the archive and its block index by sha256 and records it. Nothing is stored unless
 * verification passed: a refused artifact leaves no blob and no row.
 */
export async function ingestArtifact(options: IngestOptions): Promise<ArtifactRecord> {
  const prepared = await prepareArtifact({
    artifact: options.source,
    workDir: options.workDir,
    blockSize: options.blockSize ?? DEFAULT_BLOCK_SIZE,
    ...(options.trustedKeys === undefined || options.trustedKeys.length === 0
      ? {}
      : { trustedKeys: options.trustedKeys }),
  });
  try {
    const archive = await options.blobs.put(prepared.archivePath);
    const index = await options.blobs.put(prepared.indexPath);
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
