import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { unpackArtifact, verifyArtifact } from '../runtime/artifact/index.js';
import { OutpostError, isOutpostError, messageOf } from '../runtime/errors.js';
import { logger } from '../runtime/log.js';
import type { Model } from '../runtime/model/model.js';
import type { TuneChoiceFile } from '../runtime/bench/tune-choice.js';
import { bake } from './bake.js';
import type { AgentConfig } from './config.js';
import { archiveContentBytes, hostArch, requireSpace } from './disk.js';
import { downloadArtifact } from './download.js';
import type { Guardrails } from './guardrails.js';
import { runHook } from './hooks.js';
import type { JobsClient } from './jobs-client.js';
import { JobsRejectedError } from './jobs-client.js';
import {
  isProtocolError,
  parseJobDocument,
  type JobDocument,
  type JobExecution,
  type StatusDetails,
} from './protocol/index.js';
import type { ActiveModels } from './repository.js';
import { selfTest } from './self-test.js';
import type { DeploymentState, DeploymentStep, DeploymentStore, Outcome } from './state.js';
import { ModelStore } from './store.js';
import { applyPlan, loadInstalled, nextPlan } from './serving-plan.js';
import type { Transport } from './transport/types.js';

const log = logger('agent.deployment');

export interface DeploymentContext {
  readonly config: AgentConfig;
  readonly store: ModelStore;
  readonly deployments: DeploymentStore;
  readonly models: ActiveModels;
  /** Present when guardrails are configured: a deployment bakes under watch before it succeeds. */
  readonly guardrails: Guardrails | undefined;
  /** `outpost tune` choices by model (threads, and variant/backend of the tuned version). */
  readonly tuning: ReadonlyMap<string, TuneChoiceFile> | undefined;
  readonly jobs: JobsClient;
  readonly transport: Transport;
  readonly downloadsDir: string;
  readonly trustedKeys: readonly string[];
  readonly requireSignature: boolean;
  /** Spools a deployment event for the fleet. */
  readonly event: (event: Record<string, unknown>) => Promise<void>;
  /** Something the status shows changed. */
  readonly changed: () => void;
  /** Set when the agent is stopping: steps stop where they are, to resume on the next start. */
  readonly signal: AbortSignal;
  /** Models loaded by a self-test in this process, by job id, waiting for their activation step. */
  readonly tested: Map<string, Model>;
}

function downloadDir(ctx: DeploymentContext, jobId: string): string {
  return join(ctx.downloadsDir, jobId);
}

/** Persists the next state, then tells the fleet (spooled event, best-effort IN_PROGRESS) and the status. */
async function advance(
  ctx: DeploymentContext,
  state: DeploymentState,
  step: DeploymentStep,
  fields: Partial<DeploymentState> = {},
): Promise<DeploymentState> {
  const next = await ctx.deployments.write({ ...state, ...fields, step });
  await ctx.event({
    type: 'deployment.step',
    timestamp: Math.floor(Date.now() / 1000),
    jobId: next.jobId,
    model: next.model,
    version: next.version,
    step,
    ...(next.outcome === undefined ? {} : { outcome: next.outcome }),
  });
  ctx.changed();
  return next;
}

function documentOf(state: DeploymentState): JobDocument {
  return parseJobDocument(state.document);
}

/**
 * Takes a job execution the agent just started: refuses it up front (REJECTED, with a reason code) when the
 * document is malformed or oversized, names a model this device does not run, or targets another architecture;
 * otherwise records the deployment, with the version currently serving as the rollback target.
 */
export async function acceptExecution(ctx: DeploymentContext, execution: JobExecution): Promise<DeploymentState> {
  const existing = await ctx.deployments.read(execution.jobId);
  if (existing !== undefined) return existing;
  const now = new Date().toISOString();
  const base = {
    jobId: execution.jobId,
    document: execution.jobDocument ?? null,
    versionNumber: execution.versionNumber,
    executionNumber: execution.executionNumber,
    bytesTotal: 0,
    bytesReceived: 0,
    bytesFetched: 0,
    startedAt: now,
    updatedAt: now,
    attempts: 1,
  };
  const reject = (model: string, version: string, code: string, message: string) =>
    ctx.deployments.write({
      ...base,
      model,
      version,
      step: 'reporting',
      outcome: { status: 'REJECTED', code, message },
    });
  let document: JobDocument;
  try {
    document = parseJobDocument(
      typeof execution.jobDocument === 'string' ? JSON.parse(execution.jobDocument) : execution.jobDocument,
    );
  } catch (error) {
    return reject('unknown', 'unknown', isProtocolError(error) ? error.code : 'JOB_DOCUMENT_INVALID', messageOf(error));
  }
  const { name, version } = document.model;
  const { models } = ctx.config;
  if (models.length > 0 && !models.includes(name)) {
    return reject(name, version, 'MODEL_NOT_ALLOWED', `this device runs ${models.join(', ')}, not "${name}"`);
  }
  const arch = document.target?.arch;
  if (arch !== undefined && arch !== 'any' && arch !== hostArch()) {
    return reject(
      name,
      version,
      'ARTIFACT_TARGET_MISMATCH',
      `the artifact is for ${arch}; this device is ${hostArch()}`,
    );
  }
  const previous = await ctx.store.current(name);
  return ctx.deployments.write({
    ...base,
    model: name,
    version,
    step: 'downloading',
    bytesTotal: document.artifact.size,
    ...(previous === undefined ? {} : { previous }),
  });
}

type Step = (ctx: DeploymentContext, state: DeploymentState) => Promise<DeploymentState>;

const download: Step = async (ctx, state) => {
  const document = documentOf(state);
  await requireSpace(ctx.downloadsDir, document.artifact.size, ctx.config.diskMarginBytes, 'downloading the artifact');
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
    // Offline first: a download waits for the broker (and resumes after every loss of it) rather than failing.
    for (;;) {
      await online(ctx);
      try {
        await downloadArtifact({
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
        });
        break;
      } catch (error) {
        if (!isTransportLoss(error)) throw error;
        log.info({ jobId: state.jobId, error: messageOf(error) }, 'broker lost during download; resuming when back');
      }
    }
  } finally {
    if (timer !== undefined) clearTimeout(timer);
    await writing;
  }
  return advance(ctx, current, 'verifying');
};

const verify: Step = async (ctx, state) => {
  const archive = join(downloadDir(ctx, state.jobId), 'artifact.tar.gz');
  const content = await archiveContentBytes(archive);
  await requireSpace(ctx.store.root, content, ctx.config.diskMarginBytes, 'installing the artifact');
  return advance(ctx, state, 'staging');
};

const stage: Step = async (ctx, state) => {
  const { store } = ctx;
  await store.ensure(state.model);
  await store.clearStaging(state.model, state.jobId); // whatever a crash left half-extracted
  if (await store.has(state.model, state.version)) return advance(ctx, state, 'self-testing');
  const staging = store.stagingDir(state.model, state.jobId);
  const archive = join(downloadDir(ctx, state.jobId), 'artifact.tar.gz');
  await unpackArtifact(archive, staging);
  const verified = await verifyArtifact(staging, {
    trustedKeys: ctx.trustedKeys,
    requireSignature: ctx.requireSignature,
    target: { arch: hostArch() },
  });
  if (verified.manifest.name !== state.model || verified.manifest.version !== state.version) {
    throw new OutpostError(
      'ARTIFACT_MANIFEST_INVALID',
      `the artifact is ${verified.manifest.name}@${verified.manifest.version}; the job deploys ${state.model}@${state.version}`,
    );
  }
  await runHook(ctx.config.hooks, 'beforeInstall', {
    jobId: state.jobId,
    model: state.model,
    version: state.version,
    dir: staging,
    ...(state.previous === undefined ? {} : { previous: state.previous }),
  });
  await store.install(state.model, state.version, staging);
  return advance(ctx, state, 'self-testing');
};

const test: Step = async (ctx, state) => {
  const dir = ctx.store.versionDir(state.model, state.version);
  const result = await selfTest(dir, {
    trustedKeys: ctx.trustedKeys,
    requireSignature: ctx.requireSignature,
    backend: ctx.config.backend,
    benchmarkIterations: ctx.config.benchmarkIterations,
  });
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

const activate: Step = async (ctx, state) => {
  // The plan before this deployment is kept in the state (first time only), so a rollback restores exactly it.
  const before = state.previousPlan ?? (await ctx.store.servingPlan(state.model));
  const plan = nextPlan(documentOf(state).rollout, before, state.version);
  if (plan.production.length === 1 && plan.production[0]?.version === state.version)
    await ctx.store.activate(state.model, state.version);
  await ctx.store.saveServingPlan(state.model, plan);
  const model = ctx.tested.get(state.jobId) ?? (await loadInstalled(ctx, state.model, state.version));
  ctx.tested.delete(state.jobId);
  await applyPlan(ctx, state.model, plan, model);
  return advance(ctx, state, 'validating', before === undefined ? {} : { previousPlan: before });
};

const validate: Step = async (ctx, state) => {
  const hook = {
    jobId: state.jobId,
    model: state.model,
    version: state.version,
    dir: ctx.store.versionDir(state.model, state.version),
    ...(state.previous === undefined ? {} : { previous: state.previous }),
  };
  await runHook(ctx.config.hooks, 'afterActivate', hook);
  await runHook(ctx.config.hooks, 'validate', hook);
  const keep = documentOf(state).keepVersions ?? ctx.config.keepVersions;
  const pinned = [
    ...ModelStore.planVersions(await ctx.store.servingPlan(state.model)),
    ...ModelStore.planVersions(state.previousPlan),
  ];
  await ctx.store.prune(state.model, keep, pinned);
  const seconds = bakeSeconds(ctx, state);
  if (seconds > 0) {
    const bakeUntil = new Date(Date.now() + seconds * 1000).toISOString();
    return advance(ctx, state, 'baking', { bakeUntil });
  }
  return advance(ctx, state, 'reporting', { outcome: succeeded(state) });
};

function succeeded(state: DeploymentState): Outcome {
  return {
    status: 'SUCCEEDED',
    code: 'OK',
    message: `${state.model}@${state.version} serving (${state.variant ?? '?'} on ${state.backend ?? '?'})`,
  };
}

/** How long the new version bakes under the guardrails: the job's `rollout.bakeSeconds`, else the config's window. */
function bakeSeconds(ctx: DeploymentContext, state: DeploymentState): number {
  const rollout = documentOf(state).rollout;
  if (ctx.guardrails === undefined || ctx.config.guardrails === undefined || rollout?.mode === 'shadow') return 0;
  return rollout?.bakeSeconds ?? ctx.config.guardrails.windowSeconds;
}

/** The guardrail window: the new version serves under watch; an alarm rolls it back (bake.ts). */
const baking: Step = async (ctx, state) => {
  if (ctx.guardrails !== undefined) {
    const until = state.bakeUntil === undefined ? Date.now() : Date.parse(state.bakeUntil);
    const baked = bake({
      guardrails: ctx.guardrails,
      model: state.model,
      version: state.version,
      until,
      windowSeconds: bakeSeconds(ctx, state),
      signal: ctx.signal,
    });
    ctx.changed(); // the watch started: the status shows its figures from now on
    await baked;
  }
  return advance(ctx, state, 'reporting', { outcome: succeeded(state) });
};

const rollBack: Step = async (ctx, state) => {
  const plan = state.previousPlan;
  if (plan === undefined) {
    // Nothing served before this deployment: serve nothing rather than the failed version.
    await ctx.models.remove(state.model);
    await rm(join(ctx.store.modelDir(state.model), 'current'), { force: true });
    await rm(join(ctx.store.modelDir(state.model), 'serving.json'), { force: true });
  } else {
    const only = plan.production.length === 1 ? plan.production[0]?.version : undefined;
    if (only !== undefined && (await ctx.store.current(state.model)) !== only)
      await ctx.store.activate(state.model, only);
    await ctx.store.saveServingPlan(state.model, plan);
    await applyPlan(ctx, state.model, plan);
    log.warn({ model: state.model, restored: plan }, 'rolled back');
  }
  return advance(ctx, state, 'reporting');
};

function statusDetails(state: DeploymentState): StatusDetails {
  const outcome = state.outcome;
  const details: StatusDetails = { model: state.model, version: state.version };
  if (outcome !== undefined) {
    details.reasonCode = outcome.code;
    details.reason = outcome.message.slice(0, 1000) || '-';
  }
  if (state.variant !== undefined) details.variant = state.variant;
  if (state.backend !== undefined) details.backend = state.backend;
  details.bytesFetched = String(state.bytesFetched);
  return details;
}

/** A connection problem, not an artifact problem: the step waits for the broker and carries on. */
function isTransportLoss(error: unknown): boolean {
  return isOutpostError(error) && (error.code.startsWith('TRANSPORT_') || error.code === 'TIMEOUT');
}

/** Resolves when the transport is connected (or the agent stops). */
function online(ctx: DeploymentContext): Promise<void> {
  if (ctx.transport.connected) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const off = ctx.transport.onConnectionChange((connected) => {
      if (!connected) return;
      off();
      resolve();
    });
    ctx.signal.addEventListener(
      'abort',
      () => {
        off();
        reject(new OutpostError('DEPLOYMENT_INTERRUPTED', 'agent stopping'));
      },
      { once: true },
    );
  });
}

const report: Step = async (ctx, state) => {
  const outcome = state.outcome ?? { status: 'FAILED' as const, code: 'INTERNAL', message: 'no outcome recorded' };
  let versionNumber = state.versionNumber;
  for (let attempt = 0; ; attempt++) {
    await online(ctx);
    try {
      await ctx.jobs.update(state.jobId, outcome.status, statusDetails(state), versionNumber);
      break;
    } catch (error) {
      if (error instanceof JobsRejectedError) {
        if (error.jobsCode === 'VersionMismatch' && attempt < 3) {
          versionNumber = (await ctx.jobs.describe(state.jobId))?.versionNumber ?? versionNumber;
          continue;
        }
        if (!error.retryable) {
          // Canceled, timed out or removed meanwhile: the fleet has moved on; nothing left to report.
          log.warn({ jobId: state.jobId, code: error.jobsCode }, 'job no longer accepts updates');
          break;
        }
      }
      if (ctx.signal.aborted) throw new OutpostError('DEPLOYMENT_INTERRUPTED', 'agent stopping');
      await new Promise((resolve) => setTimeout(resolve, Math.min(30_000, 1000 * 2 ** attempt)));
    }
  }
  await rm(downloadDir(ctx, state.jobId), { recursive: true, force: true });
  return advance(ctx, state, 'done');
};

const STEPS: Readonly<Record<Exclude<DeploymentStep, 'done'>, Step>> = Object.freeze({
  downloading: download,
  verifying: verify,
  staging: stage,
  'self-testing': test,
  activating: activate,
  validating: validate,
  baking,
  'rolling-back': rollBack,
  reporting: report,
});

/** Where a failure in a step leads: after the switch, back to the previous version first. */
function failureStep(step: DeploymentStep): DeploymentStep {
  return step === 'activating' || step === 'validating' || step === 'baking' ? 'rolling-back' : 'reporting';
}

/**
 * Runs a deployment from its persisted step to `done`. A failure in any step ends it FAILED with the error's code
 * (the previous version keeps or resumes serving); the agent stopping leaves it where it is, to resume.
 */
export async function runDeployment(ctx: DeploymentContext, initial: DeploymentState): Promise<DeploymentState> {
  let state = initial;
  while (state.step !== 'done') {
    const step = state.step;
    try {
      state = await STEPS[step](ctx, state);
    } catch (error) {
      if (isOutpostError(error, 'DEPLOYMENT_INTERRUPTED') || ctx.signal.aborted) throw error;
      if (step === 'reporting' || step === 'rolling-back') {
        // Never loop on the exits themselves: record and finish.
        log.error({ jobId: state.jobId, step, error: messageOf(error) }, 'deployment exit step failed');
        if (step === 'rolling-back') state = await advance(ctx, state, 'reporting');
        else throw error;
        continue;
      }
      const code = isOutpostError(error) ? error.code : 'INTERNAL';
      log.warn({ jobId: state.jobId, step, code, error: messageOf(error) }, 'deployment failed');
      ctx.tested
        .get(state.jobId)
        ?.release()
        .catch(() => undefined);
      ctx.tested.delete(state.jobId);
      await ctx.store.clearStaging(state.model, state.jobId).catch(() => undefined);
      state = await advance(ctx, state, failureStep(step), {
        outcome: { status: 'FAILED', code, message: `${step}: ${messageOf(error)}` },
      });
    }
  }
  return state;
}
