import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { unpackArtifact, verifyArtifact, type Manifest } from '../../runtime/artifact/index.js';
import { OutpostError } from '../../runtime/errors.js';
import { checkDelivery } from '../delivery-check.js';
import { downloadArtifact } from '../download.js';
import { downloadFiles } from '../download-files.js';
import { chooseFetch } from '../fetch-choice.js';
import type { JobDocument } from '../protocol/index.js';
import { stageDownloadedFiles } from '../stage-files.js';
import type { DownloadOptions } from '../stream-fetcher.js';

/**
 * A simulated device's download and verification, real in both stream layouts (docs/job-document.md): `archive`
 * fetches the `.tar.gz`, unpacks and verifies it; `files` fetches the delivery index, decides from the signed
 * manifest as the agent does (signature, signer, name and version, target: refused before any payload byte), fetches
 * the rank-1 variant (a pipeline: of each bundled model, fetch-choice.ts) and the shared files only, stages them and verifies what it fetched.
 */
export interface SimulatedFetchPolicy {
  readonly trustedKeys: readonly string[];
  readonly requireSignature: boolean;
  readonly arch: 'x86_64' | 'arm64';
}

/** `dir/download`: what is fetched; `dir/staging`: the artifact directory verified. Returns the fetched variants. */
export async function fetchForJob(
  options: Omit<DownloadOptions, 'dir' | 'document'>,
  document: JobDocument,
  dir: string,
  policy: SimulatedFetchPolicy,
): Promise<{ variants?: readonly string[] }> {
  const download = { ...options, document, dir: join(dir, 'download') };
  if (document.artifact.layout !== 'files') {
    await downloadArtifact(download);
    return {};
  }
  let variants: readonly string[] = [];
  await downloadFiles({
    ...download,
    decide: async (index, fetch, filesDir) => {
      const { manifest } = await checkDelivery(index, { ...policy, models: [], job: document.model });
      const choice = await chooseFetch(manifest, { backend: 'auto', count: 1, fetch, filesDir });
      variants = choice.variants;
      return choice.paths;
    },
  });
  return { variants };
}

/** Unpacks (archive) or stages (files) and verifies as the agent's staging step: signature, hashes, target, name. */
export async function verifyForJob(
  document: JobDocument,
  dir: string,
  policy: SimulatedFetchPolicy,
  variants: readonly string[] | undefined,
): Promise<Manifest> {
  const staging = join(dir, 'staging');
  await mkdir(dir, { recursive: true });
  const absent =
    variants === undefined ? undefined : await stageDownloadedFiles(join(dir, 'download'), staging, variants);
  if (absent === undefined) await unpackArtifact(join(dir, 'download', 'artifact.tar.gz'), staging);
  const verified = await verifyArtifact(staging, {
    trustedKeys: policy.trustedKeys,
    requireSignature: policy.requireSignature,
    target: { arch: policy.arch },
    ...(absent === undefined ? {} : { absentVariants: absent }),
  });
  const { name, version } = verified.manifest;
  if (name !== document.model.name || version !== document.model.version) {
    throw new OutpostError(
      'ARTIFACT_MANIFEST_INVALID',
      `the artifact is ${name}@${version}; the job deploys ${document.model.name}@${document.model.version}`,
    );
  }
  return verified.manifest;
}
