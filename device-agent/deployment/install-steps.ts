import { join } from 'node:path';
import { unpackArtifact, verifyArtifact } from '../../runtime/artifact/index.js';
import { OutpostError, isOutpostError, messageOf } from '../../runtime/errors.js';
import { logger } from '../../runtime/log.js';
import { retry } from '../../runtime/retry.js';
import { advance, documentOf, downloadDir, online, type Step } from './context.js';
import { archiveContentBytes, hostArch, requireSpace } from '../storage/disk.js';
import { downloadArtifact } from '../download.js';
import type { DownloadOptions } from '../stream-fetcher.js';
import { fallBack, fetchChosen, stageFetched } from './variant-steps.js';
import { runHook } from './hooks.js';
import { selfTest } from './self-test.js';
import { testPipeline } from './pipeline-self-test.js';
import { isPipelineArtifact } from '../../runtime/pipeline/index.js';
import type { DeploymentState } from '../storage/deployment-records.js';

const log = logger('agent.deployment');

/*
 * The steps before the switch: fetch the artifact, check there is room for it, unpack and verify it into the
 * store, self-test it. A failure in any of them leaves the serving version untouched.
 */

export const download: Step = async (ctx, state) => {
  const document = documentOf(state);
  // A version this device still has installed with exactly this manifest (a rollback to it) is not fetched again:
  // installed versions were verified when installed and never change (docs/job-document.md, manifestSha256).
  const wanted = document.artifact.manifestSha256;
  const installed = state.reinstall === true ? undefined : await ctx.store.manifestDigest(state.model, state.version);
  if (wanted !== undefined && installed === wanted) {
    log.info({ jobId: state.jobId, model: state.model, version: state.version }, 'installed already: not fetched');
    return advance(ctx, state, 'self-testing', { alreadyInstalled: true });
  }
  // The files layout checks once it knows what it will fetch (variant-steps.ts): the variants it chose, not all.
  if (document.artifact.layout !== 'files') {
    await requireSpace(
      ctx.downloadsDir,
      document.artifact.size,
      ctx.config.diskMarginBytes,
      'downloading the artifact',
    );
  }
  let current = state;
  // Counters on disk at most once a second, and always the latest (a trailing write); the arrivals log is exact.
  let timer: NodeJS.Timeout | undefined;
  let writing = Promise.resolve();
  const persist = () => {
    timer = undefined;
    const snapshot = current;
    writing = writing
      .then(() => ctx.deployments.write(snapshot))
      .then(
        () => ctx.changed(),
        () => undefined,
      );
  };
  try {
    // Offline first: a download waits out the broker's absence (and resumes after every loss of it) rather than
    // failing; a stalled or corrupt stream is tried again with backoff a bounded number of times; a refusal (an
    // ACL, a malformed stream) fails the job at once.
    await retry(
      async () => {
        await online(ctx);
        const options: DownloadOptions = {
          transport: ctx.transport,
          thing: ctx.config.thing,
          document,
          dir: downloadDir(ctx, state.jobId),
          encoding: ctx.config.download.encoding,
          maxInFlightBlocks: ctx.config.download.blocksPerRequest,
          requestTimeoutMs: ctx.config.download.requestTimeoutMs,
          maxStalls: ctx.config.download.maxStalls,
          signal: ctx.signal,
          onProgress: (p) => {
            current = {
              ...current,
              bytesTotal: p.bytesTotal,
              bytesReceived: p.bytesReceived,
              bytesFetched: p.bytesFetched,
            };
            timer ??= setTimeout(persist, 1000);
          },
        };
        if (document.artifact.layout !== 'files') await downloadArtifact(options);
        else
          await fetchChosen(ctx, current, options, (variants) => (current = { ...current, variants: [...variants] }));
      },
      {
        policy: ctx.config.retry.download,
        signal: ctx.signal,
        network: { wait: () => online(ctx) },
        onRetry: ({ error, category, attempt, delayMs }) => {
          const where = { jobId: state.jobId, attempt, delayMs, code: codeOf(error), error: messageOf(error) };
          if (category === 'wait-for-network') log.info(where, 'broker lost during download; resuming when back');
          else log.warn(where, 'download failed; trying again after a backoff');
        },
      },
    );
  } finally {
    // The last counters are written whatever happened: a refused artifact reports what it cost.
    if (timer !== undefined) {
      clearTimeout(timer);
      persist();
    }
    await writing;
  }
  return advance(ctx, current, 'verifying');
};

const codeOf = (error: unknown): string => (isOutpostError(error) ? error.code : 'INTERNAL');

export const verify: Step = async (ctx, state) => {
  const archive = join(downloadDir(ctx, state.jobId), 'artifact.tar.gz');
  // The files layout's files are linked into the store, not copied: what they take there is what they take here.
  const content = documentOf(state).artifact.layout === 'files' ? state.bytesTotal : await archiveContentBytes(archive);
  await requireSpace(ctx.store.root, content, ctx.config.diskMarginBytes, 'installing the artifact');
  return advance(ctx, state, 'staging');
};

/**
 * Unpacks and verifies what arrived (signature, every hash, target) before deciding anything about it, whatever
 * version it claims. Then: a new name@version is installed (beforeInstall hook, rename into the store); one already
 * installed with the same manifest is an idempotent redeploy (nothing is written); one installed with a different
 * manifest is refused, since an installed version never changes (VERSION_CONFLICT, naming both manifests).
 */
export const stage: Step = async (ctx, state) => {
  const { store } = ctx;
  await store.ensure(state.model);
  await store.clearStaging(state.model, state.jobId); // whatever a crash left half-extracted
  const staging = store.stagingDir(state.model, state.jobId);
  let absent: string[] = [];
  if (documentOf(state).artifact.layout === 'files') absent = await stageFetched(ctx, state, staging);
  else await unpackArtifact(join(downloadDir(ctx, state.jobId), 'artifact.tar.gz'), staging);
  const verified = await verifyArtifact(staging, {
    absentVariants: absent,
    trustedKeys: ctx.trustedKeys,
    requireSignature: ctx.requireSignature,
    target: { arch: hostArch() },
    // Recorded as hashed at install: the files keep their inodes when the staging directory is renamed into the store.
    ...(ctx.verdicts === undefined ? {} : { verdicts: ctx.verdicts }),
  });
  await ctx.verdicts?.save();
  const { name, version } = verified.manifest;
  if (name !== state.model || version !== state.version) {
    throw new OutpostError(
      'ARTIFACT_MANIFEST_INVALID',
      `the artifact is ${name}@${version}; the job deploys ${state.model}@${state.version}`,
    );
  }
  // A self-test fallback installs this job's own install again, with the variant it fetched since.
  if (state.reinstall === true) await store.uninstall(state.model, state.version, state.jobId);
  const installed = await store.manifestDigest(state.model, state.version);
  if (installed !== undefined) {
    await store.clearStaging(state.model, state.jobId);
    if (installed !== verified.manifestSha256) throw versionConflict(state, installed, verified.manifestSha256);
    // This job's own install, interrupted before the step was recorded, is not a redeploy.
    if (state.installing === true) return advance(ctx, state, 'self-testing', { installing: false });
    log.info({ jobId: state.jobId, model: name, version, manifest: installed }, 'already installed: not reinstalled');
    return advance(ctx, state, 'self-testing', { alreadyInstalled: true });
  }
  await runHook(ctx.config.hooks, 'beforeInstall', {
    jobId: state.jobId,
    model: state.model,
    version: state.version,
    dir: staging,
    ...(state.previous === undefined ? {} : { previous: state.previous }),
  });
  // Recorded before the rename: a restart that finds the version installed knows this job put it there.
  const installing = await ctx.deployments.write({ ...state, installing: true, reinstall: false });
  await store.saveAbsentVariants(state.model, state.version, absent);
  await store.install(state.model, state.version, staging);
  return advance(ctx, installing, 'self-testing', { installing: false });
};

function versionConflict(state: DeploymentState, installed: string, arrived: string): OutpostError {
  const what = `${state.model}@${state.version}`;
  return new OutpostError(
    'VERSION_CONFLICT',
    `${what} is already installed with manifest sha256 ${installed}; this artifact's manifest is sha256 ${arrived}. ` +
      `An installed version never changes: give the new build a new version (outpost compile --model-version) and deploy that`,
    { details: { model: state.model, version: state.version, installed, arrived } },
  );
}

export const test: Step = async (ctx, state) => {
  const dir = ctx.store.versionDir(state.model, state.version);
  if (await isPipelineArtifact(dir)) return testPipeline(ctx, state);
  let result;
  try {
    result = await selfTest(dir, {
      trustedKeys: ctx.trustedKeys,
      requireSignature: ctx.requireSignature,
      backend: ctx.config.backend,
      benchmarkIterations: ctx.config.benchmarkIterations,
      absentVariants: await ctx.store.absentVariants(state.model, state.version),
      benchmark: ctx.config.benchmarkVariants > 1,
    });
  } catch (error) {
    const next = await fallBack(ctx, state, error);
    if (next !== undefined) return next;
    throw error;
  }
  ctx.tested
    .get(state.jobId)
    ?.release()
    .catch(() => undefined);
  ctx.tested.set(state.jobId, result.model);
  await ctx.store.saveSelection(state.model, state.version, {
    variant: result.model.variant.id,
    backend: result.model.backend,
    ...(result.benchmark === undefined ? {} : { benchmark: { ...result.benchmark } }),
    selectedAt: new Date().toISOString(),
  });
  return advance(ctx, state, 'activating', { variant: result.model.variant.id, backend: result.model.backend });
};
