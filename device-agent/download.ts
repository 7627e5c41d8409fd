import { mkdir, rename, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { OutpostError } from '../runtime/errors.js';
import { parseBlockIndex, type BlockIndex } from './protocol/index.js';
import { writeFileAtomic } from './storage/atomic-files.js';
import { downloadError, type DownloadOptions } from './stream-fetcher.js';
import { Arrivals, fetchStreamIndex, fetchToPart, sha256Of } from './block-engine.js';

export type { DownloadOptions, DownloadProgress } from './stream-fetcher.js';
export { ARRIVALS, ARRIVALS_BATCH, blocksOnDisk, fetchedSoFar, sha256Of } from './block-engine.js';

/**
 * The `archive` stream layout, device side (docs/job-document.md, "Stream layouts"): file 0 the block-hash index,
 * file 1 the artifact `.tar.gz`. In `downloads/<jobId>/`: index.json (once it matched the job document),
 * artifact.part (blocks at their offsets), artifact.tar.gz (whole and matching the job's sha256), arrivals.log.
 */
const PART = 'artifact.part';
const DONE = 'artifact.tar.gz';
const INDEX = 'index.json';

/** The index file: fetched whole (it is small), checked against the job document's size and sha256. */
async function fetchIndex(options: DownloadOptions, arrivals: Arrivals, arrived: () => void): Promise<BlockIndex> {
  const { document, dir } = options;
  const path = join(dir, INDEX);
  const { blockSize } = document.artifact;
  const { buffer, cached } = await fetchStreamIndex(options, path, 'block index', arrivals, arrived);
  const index = parseBlockIndex(buffer);
  if (cached) return index;
  if (
    index.size !== document.artifact.size ||
    index.sha256 !== document.artifact.sha256 ||
    index.blockSize !== blockSize
  ) {
    throw new OutpostError(
      'DOWNLOAD_FAILED',
      'block index disagrees with the job document (size, sha256 or block size)',
    );
  }
  await writeFileAtomic(path, buffer);
  return index;
}

/**
 * Downloads the job's artifact archive into `dir`, resumably (block-engine.ts): blocks already on disk (verified
 * against the index) are never fetched again, each arriving block is checked against its hash before it is
 * written, memory holds at most `maxInFlightBlocks` blocks, and the finished file must match the job document's
 * sha256. Returns its path.
 */
export async function downloadArtifact(options: DownloadOptions): Promise<string> {
  const { dir, document } = options;
  await mkdir(dir, { recursive: true });
  const done = join(dir, DONE);
  const exists = await stat(done).then(
    () => true,
    () => false,
  );
  if (exists && (await sha256Of(done)) === document.artifact.sha256) return done;
  const archiveFileId = document.artifact.fileId;
  if (archiveFileId === undefined) {
    throw new OutpostError('JOB_DOCUMENT_INVALID', 'the archive layout needs artifact.fileId', {
      details: { field: 'artifact.fileId' },
    });
  }
  const arrivals = await Arrivals.open(dir);
  let total = document.artifact.size;
  let received = 0;
  const report = () =>
    options.onProgress?.({ bytesTotal: total, bytesReceived: received, bytesFetched: arrivals.fetched });
  try {
    const index = await fetchIndex(options, arrivals, report);
    total = index.size;
    const digest = await fetchToPart(options, archiveFileId, index, join(dir, PART), arrivals, {
      arrived: report,
      stored: (bytes) => {
        received += bytes;
        report();
      },
    });
    if (digest !== document.artifact.sha256) {
      throw new OutpostError('DOWNLOAD_FAILED', `downloaded archive does not match the job document's sha256`, {
        retryable: true,
      });
    }
    await rename(join(dir, PART), done);
    return done;
  } catch (error) {
    throw downloadError(error, dir, true);
  } finally {
    await arrivals.close();
  }
}
