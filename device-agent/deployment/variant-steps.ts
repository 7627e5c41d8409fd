import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { MANIFEST_FILE, parseManifestBytes } from '../../runtime/artifact/index.js';
import { isOutpostError, messageOf } from '../../runtime/errors.js';
import { logger } from '../../runtime/log.js';
import { checkDelivery, rankedVariants } from '../delivery-check.js';
import { chooseFetch } from '../fetch-choice.js';
import { downloadFiles, type FilesDownload } from '../download-files.js';
import { stageDownloadedFiles } from '../stage-files.js';
import type { DownloadOptions } from '../stream-fetcher.js';
import type { DeliveryIndex } from '../protocol/index.js';
import { hostArch, requireSpace } from '../storage/disk.js';
import type { DeploymentState } from '../storage/deployment-records.js';
import { advance, downloadDir, type DeploymentContext } from './context.js';

const log = logger('agent.deployment');

/*
 * The `files` stream layout's side of the install steps (docs/job-document.md, "Stream layouts"): decide from the
 * signed manifest which variants to fetch (refusing the artifact before any payload byte; a pipeline's bundled
 * models' variants, fetch-choice.ts), stage the fetched files as an artifact directory that lacks the other
 * variants, and, when every fetched variant of a model artifact fails its self-test, fetch the next-ranked one
 * before giving up. A pipeline whose self-test fails is not retried with other variants (pipeline-self-test.ts).
 */

/**
 * Fetches the delivery index, checks it against this device's policy, then fetches the chosen variants and the
 * shared files. `state.variants`, once set, is the choice (a restart or a fallback does not choose again); `onChosen`
 * hears it before any payload byte is asked for.
 */
export async function fetchChosen(
  ctx: DeploymentContext,
  state: DeploymentState,
  options: DownloadOptions,
  onChosen: (variants: readonly string[]) => void,
): Promise<FilesDownload> {
  return downloadFiles({
    ...options,
    decide: async (index: DeliveryIndex, fetch, filesDir) => {
      const checked = await checkDelivery(index, {
        trustedKeys: ctx.trustedKeys,
        requireSignature: ctx.requireSignature,
        arch: hostArch(),
        models: ctx.config.models,
        job: { name: state.model, version: state.version },
      });
      // A pipeline: its bundled models' variants, one each (fetch-choice.ts; docs/pipelines.md "Deploying a pipeline").
      const { variants, ranked, paths } = await chooseFetch(checked.manifest, {
        backend: ctx.config.backend,
        count: ctx.config.benchmarkVariants,
        chosen: state.variants,
        fetch,
        filesDir,
      });
      onChosen(variants);
      log.info({ jobId: state.jobId, variants, of: ranked }, 'variants chosen from the manifest');
      const bytes = paths.reduce((sum, p) => sum + (checked.manifest.files[p]?.bytes ?? 0), 0);
      await requireSpace(options.dir, bytes, ctx.config.diskMarginBytes, 'downloading the artifact');
      return paths;
    },
  });
}

/** The fetched files as an artifact directory in `staging` (stage-files.ts); returns the variants it lacks. */
export async function stageFetched(ctx: DeploymentContext, state: DeploymentState, staging: string): Promise<string[]> {
  return stageDownloadedFiles(downloadDir(ctx, state.jobId), staging, state.variants ?? []);
}

/**
 * After every fetched variant failed its self-test: the next-ranked variant this device can run, if any, becomes
 * this deployment's next fetch (`reinstall`: the version this job installed is installed again with it). Returns
 * the persisted state, or undefined when nothing is left to try.
 */
export async function fallBack(
  ctx: DeploymentContext,
  state: DeploymentState,
  error: unknown,
): Promise<DeploymentState | undefined> {
  // A variant that does not load (MODEL_INVALID) fails its self-test as surely as one that answers wrong; a
  // stop, or a problem with the artifact itself (its signature, its hashes), is not the variant's.
  const code = isOutpostError(error) ? error.code : 'INTERNAL';
  const variantFault = code !== 'DEPLOYMENT_INTERRUPTED' && !code.startsWith('ARTIFACT_');
  if (!variantFault || state.variants === undefined || state.alreadyInstalled === true) return undefined;
  const manifestPath = join(ctx.store.versionDir(state.model, state.version), MANIFEST_FILE);
  const { manifest } = parseManifestBytes(await readFile(manifestPath));
  const tried = state.variants;
  const next = rankedVariants(manifest, ctx.config.backend).find((id) => !tried.includes(id));
  if (next === undefined) return undefined;
  log.warn(
    { jobId: state.jobId, failed: tried, next, code, error: messageOf(error) },
    'self-test failed; fetching the next variant',
  );
  return advance(ctx, state, 'downloading', { variants: [...tried, next], reinstall: true });
}
