import { mkdir, rename, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { OutpostError } from '../runtime/errors.js';
import { parseDeliveryIndex, type BlockIndex, type DeliveryFile, type DeliveryIndex } from './protocol/index.js';
import { writeFileAtomic } from './storage/atomic-files.js';
import { Arrivals, fetchStreamIndex, fetchToPart, sha256Of, type FetchHooks } from './block-engine.js';
import { downloadError, type DownloadOptions } from './stream-fetcher.js';

/**
 * The `files` stream layout (docs/job-document.md, "Stream layouts"), device side. In `downloads/<jobId>/`:
 *
 *   delivery.json        the delivery index, kept once its sha256 matched the job document's indexSha256
 *   parts/<fileId>.part  a file being fetched: blocks written at their offsets, each checked against its hash
 *   files/<path>         a file complete and equal to the signed manifest's sha256 (renamed from its part)
 *   arrivals.log         one uint32 per arriving block, every file: bytes fetched across restarts (batched)
 *
 * Every file goes through the archive's block engine (block-engine.ts): pipelined positional writes, a batched
 * arrivals log, the whole-file sha256 computed as blocks arrive.
 *
 * After SIGKILL a restart re-reads the index from disk, skips complete files (their sha256 still matches), and
 * resumes a partial file from the blocks already on disk that match their hashes: nothing done is fetched again.
 */
export const DELIVERY_INDEX = 'delivery.json';
export const FILES_DIR = 'files';
const PARTS_DIR = 'parts';
/**
 * The delivery index is held in memory: a manifest (runtime/artifact caps it at 16 MiB) plus 64 bytes of hash per
 * block, so 32 MiB covers a 16 GB artifact at 64 KiB blocks; a job document claiming more is refused, not allocated.
 */
export const MAX_DELIVERY_INDEX_BYTES = 32 * 1024 * 1024; // bytes

export interface FilesDownloadOptions extends DownloadOptions {
  /**
   * Given the delivery index (checked against the job document), decides which artifact paths to fetch; throws to
   * refuse the artifact, which then costs the device the index and nothing else. `fetch` gets some files first (a
   * pipeline's bundled manifests, which say what its variants are), each whole and checked against the index, into
   * `filesDir`.
   */
  readonly decide: (
    index: DeliveryIndex,
    fetch: (paths: readonly string[]) => Promise<void>,
    filesDir: string,
  ) => Promise<readonly string[]>;
}

export interface FilesDownload {
  readonly index: DeliveryIndex;
  /** `downloads/<jobId>/files`: the fetched files under their artifact paths. */
  readonly filesDir: string;
  readonly paths: readonly string[];
}

export async function downloadFiles(options: FilesDownloadOptions): Promise<FilesDownload> {
  const { dir } = options;
  await mkdir(join(dir, PARTS_DIR), { recursive: true });
  const arrivals = await Arrivals.open(dir);
  let total = 0;
  let received = 0;
  const report = () =>
    options.onProgress?.({ bytesTotal: total, bytesReceived: received, bytesFetched: arrivals.fetched });
  const hooks = {
    arrived: report,
    stored: (bytes: number) => {
      received += bytes;
      report();
    },
  };
  try {
    const index = await fetchDeliveryIndex(options, arrivals, report);
    const fetchFirst = async (paths: readonly string[]) => {
      for (const path of paths) await fetchFile(options, index.blockSize, entryOf(index, path), arrivals, hooks);
    };
    const paths = await options.decide(index, fetchFirst, join(dir, FILES_DIR));
    const entries = paths.map((path) => entryOf(index, path));
    total = options.document.artifact.indexSize + entries.reduce((sum, e) => sum + e.size, 0);
    received = options.document.artifact.indexSize;
    report();
    for (const entry of entries) await fetchFile(options, index.blockSize, entry, arrivals, hooks);
    return { index, filesDir: join(dir, FILES_DIR), paths };
  } catch (error) {
    throw downloadError(error, dir, true);
  } finally {
    await arrivals.close();
  }
}

function entryOf(index: DeliveryIndex, path: string): DeliveryFile {
  const entry = index.files.find((f) => f.path === path);
  if (entry === undefined) throw new OutpostError('ARTIFACT_FILE_MISSING', `the delivery index has no file ${path}`);
  return entry;
}

/** The delivery index: fetched whole (it is small), checked against the job document's indexSize and indexSha256. */
async function fetchDeliveryIndex(
  options: DownloadOptions,
  arrivals: Arrivals,
  arrived: () => void,
): Promise<DeliveryIndex> {
  const { document, dir } = options;
  const { indexSize, blockSize } = document.artifact;
  if (indexSize > MAX_DELIVERY_INDEX_BYTES) {
    throw new OutpostError(
      'JOB_DOCUMENT_INVALID',
      `artifact.indexSize ${indexSize} is over the ${MAX_DELIVERY_INDEX_BYTES}-byte limit of a delivery index`,
      { details: { field: 'artifact.indexSize', value: indexSize, limit: MAX_DELIVERY_INDEX_BYTES } },
    );
  }
  const path = join(dir, DELIVERY_INDEX);
  const { buffer, cached } = await fetchStreamIndex(options, path, 'delivery index', arrivals, arrived);
  const index = parseDeliveryIndex(buffer);
  if (cached) return index;
  if (index.blockSize !== blockSize) {
    throw new OutpostError('DOWNLOAD_FAILED', 'delivery index disagrees with the job document on the block size');
  }
  await writeFileAtomic(path, buffer);
  return index;
}

/**
 * One artifact file through the block engine (block-engine.ts, as the archive): skipped when complete, else resumed
 * from its verified blocks; renamed into place when whole and equal to the signed manifest's sha256.
 */
async function fetchFile(
  options: DownloadOptions,
  blockSize: number,
  entry: DeliveryFile,
  arrivals: Arrivals,
  hooks: FetchHooks,
): Promise<void> {
  const final = join(options.dir, FILES_DIR, entry.path);
  const complete = await stat(final).then(
    (info) => info.size === entry.size,
    () => false,
  );
  if (complete && (await sha256Of(final)) === entry.sha256) {
    hooks.stored(entry.size);
    return;
  }
  await mkdir(dirname(final), { recursive: true });
  if (entry.size === 0) {
    await writeFile(final, Buffer.alloc(0));
    return;
  }
  const partPath = join(options.dir, PARTS_DIR, `${entry.fileId}.part`);
  const index: BlockIndex = {
    algorithm: 'sha256',
    blockSize,
    size: entry.size,
    sha256: entry.sha256,
    blocks: entry.blocks,
  };
  const digest = await fetchToPart(options, entry.fileId, index, partPath, arrivals, hooks);
  if (digest !== entry.sha256) {
    throw new OutpostError('DOWNLOAD_FAILED', `${entry.path} does not match the signed manifest's sha256`, {
      retryable: true,
      details: { path: entry.path },
    });
  }
  await rename(partPath, final);
}
