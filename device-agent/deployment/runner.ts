import { rm } from 'node:fs/promises';
import { OutpostError, isOutpostError, messageOf, type ErrorCode } from '../../runtime/errors.js';
import { logger } from '../../runtime/log.js';
import { retry } from '../../runtime/retry.js';
import { advance, downloadDir, online, type DeploymentContext, type Step } from './context.js';
import { download, stage, test, verify } from './install-steps.js';
import { activate, baking, rollBack, validate } from './serve-steps.js';
import { hostArch } from '../storage/disk.js';
import { JobsRejectedError } from '../jobs-client.js';
import {
  isProtocolError,
  isTerminal,
  parseJobDocument,
  type JobDocument,
  type JobExecution,
  type StatusDetails,
} from '../protocol/index.js';
import type { DeploymentState, DeploymentStep, Outcome } from '../storage/deployment-records.js';

export type { DeploymentContext } from './context.js';

const log = logger('agent.deployment');

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
  const reject = (model: string, version: string, code: ErrorCode, message: string) =>
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

function statusDetails(state: DeploymentState): StatusDetails {
  const outcome = state.outcome;
  const details: StatusDetails = { model: state.model, version: state.version };
  if (outcome !== undefined) {
    details.reasonCode = outcome.code;
    details.reason = outcome.message.slice(0, 1000) || '-';
  }
  // The version this device ran before: the fleet records it as the execution's rollback target.
  if (state.previous !== undefined) details.previousVersion = state.previous;
  if (state.variant !== undefined) details.variant = state.variant;
  if (state.backend !== undefined) details.backend = state.backend;
  details.bytesFetched = String(state.bytesFetched);
  return details;
}

/**
 * UpdateJobExecution with the outcome, until the fleet has it: through outages (waited out), throttling and
 * timeouts (backed off, without limit: the outcome must arrive), and a stale `expectedVersion` (re-read, at once).
 * A job that no longer takes updates (canceled, timed out, removed meanwhile) ends the step: the fleet moved on.
 */
const report: Step = async (ctx, state) => {
  const outcome = state.outcome ?? {
    status: 'FAILED' as const,
    code: 'INTERNAL' as const,
    message: 'no outcome recorded',
  };
  let versionNumber = state.versionNumber;
  const send = async (): Promise<void> => {
    for (let mismatch = 0; ; mismatch++) {
      try {
        await ctx.jobs.update(state.jobId, outcome.status, statusDetails(state), versionNumber);
        return;
      } catch (error) {
        const stale = error instanceof JobsRejectedError && error.jobsCode === 'VersionMismatch';
        if (!stale || mismatch >= MAX_VERSION_MISMATCHES) throw error;
        versionNumber = (await ctx.jobs.describe(state.jobId))?.versionNumber ?? versionNumber;
      }
    }
  };
  try {
    await retry(send, {
      policy: ctx.config.retry.report,
      signal: ctx.signal,
      network: { wait: () => online(ctx) },
      onRetry: ({ error, attempt, delayMs }) =>
        log.debug({ jobId: state.jobId, attempt, delayMs, error: messageOf(error) }, 'report not delivered; retrying'),
    });
  } catch (error) {
    if (ctx.signal.aborted) throw new OutpostError('DEPLOYMENT_INTERRUPTED', 'agent stopping', { cause: error });
    if (!(error instanceof JobsRejectedError)) throw error;
    // Canceled, timed out or removed meanwhile: the fleet has moved on; nothing left to report.
    log.warn({ jobId: state.jobId, code: error.jobsCode }, 'job no longer accepts updates');
  }
  await rm(downloadDir(ctx, state.jobId), { recursive: true, force: true });
  return advance(ctx, state, 'done');
};

/** A stale `expectedVersion` is re-read and the update sent again at once, this many times. */
const MAX_VERSION_MISMATCHES = 3;

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
      // What the step recorded before it failed (bytes fetched, variants chosen) goes into the report.
      state = (await ctx.deployments.read(state.jobId).catch(() => undefined)) ?? state;
      const outcome: Outcome = { status: 'FAILED', code, message: `${step}: ${messageOf(error)}` };
      const next = failureStep(step);
      try {
        state = await advance(ctx, state, next, { outcome });
      } catch (persisting) {
        // The failure cannot even be recorded (a full disk): before the switch nothing needs undoing, so the fleet
        // hears FAILED now; the record stays at its last step, and a later round finds the job already terminal.
        if (next !== 'reporting') throw persisting;
        await reportUnrecorded(ctx, state.jobId, state.versionNumber, {
          ...statusDetails(state),
          ...detailsOf(outcome),
        });
        return state;
      }
    }
  }
  return state;
}

/** Steps before the switch: a deployment stopped in one of them has changed nothing that serves. */
const BEFORE_SWITCH: ReadonlySet<DeploymentStep> = new Set(['downloading', 'verifying', 'staging', 'self-testing']);

/**
 * Whether an unfinished record is for a job that has ended meanwhile (reported FAILED without a record, canceled,
 * timed out, removed): then, if it never reached the switch, it is closed — its files removed, `done` — instead of
 * resumed for a job nobody waits for. Asks the Jobs service; offline, or after the switch, it is resumed as before.
 */
export async function closeIfEnded(ctx: DeploymentContext, state: DeploymentState): Promise<boolean> {
  if (!BEFORE_SWITCH.has(state.step) || !ctx.transport.connected) return false;
  let status;
  try {
    status = (await ctx.jobs.describe(state.jobId))?.status;
  } catch (error) {
    log.debug({ jobId: state.jobId, error: messageOf(error) }, 'could not ask whether the job ended');
    return false;
  }
  if (status !== undefined && !isTerminal(status)) return false;
  const why = status === undefined ? 'no longer exists' : `ended ${status}`;
  log.warn(
    { jobId: state.jobId, step: state.step, status },
    'job ended while its deployment was unfinished; closing it',
  );
  await ctx.store.clearStaging(state.model, state.jobId).catch(() => undefined);
  await rm(downloadDir(ctx, state.jobId), { recursive: true, force: true });
  await ctx.deployments.write({
    ...state,
    step: 'done',
    outcome: state.outcome ?? {
      status: 'FAILED',
      code: 'JOB_ENDED',
      message: `the job ${why} before this device finished`,
    },
  });
  return true;
}

function detailsOf(outcome: Outcome): StatusDetails {
  return { reasonCode: outcome.code, reason: outcome.message.slice(0, 1000) || '-' };
}

/**
 * Ends a job FAILED without a deployment record: for when the record cannot be written (ENOSPC). Best effort: if
 * the broker is away too, the job stays IN_PROGRESS until the fleet's timeout, as for a device that lost power.
 */
export async function reportUnrecorded(
  ctx: Pick<DeploymentContext, 'jobs'>,
  jobId: string,
  versionNumber: number | undefined,
  details: StatusDetails,
): Promise<boolean> {
  log.error({ jobId, ...details }, 'deployment cannot be recorded; reporting FAILED directly');
  try {
    await ctx.jobs.update(jobId, 'FAILED', details, versionNumber);
    return true;
  } catch (error) {
    log.warn({ jobId, error: messageOf(error) }, 'FAILED not reported');
    return false;
  }
}
