import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { OutpostError, isOutpostError, messageOf } from '../../runtime/errors.js';
import { logger } from '../../runtime/log.js';
import { retry } from '../../runtime/retry.js';
import { RETRY_DEFAULTS } from '../config.js';
import { JobsRejectedError, type JobsClient } from '../jobs-client.js';
import {
  isProtocolError,
  parseJobDocument,
  type JobDocument,
  type JobExecution,
  type StatusDetails,
} from '../protocol/index.js';
import type { DeploymentStep, OutcomeCode } from '../storage/deployment-records.js';
import type { Transport } from '../transport/types.js';
import { fetchForJob, verifyForJob } from './fetch.js';
import { SimulatedInstall } from './install.js';
import type { PlannedOutcome, SimulatedTarget } from './plan.js';

const log = logger('simulator.job');

/** What one simulated device saw of one job: the summary's rows. */
export interface SeenJob {
  readonly jobId: string;
  readonly model: string;
  readonly version: string;
  readonly status: 'SUCCEEDED' | 'FAILED' | 'REJECTED';
  readonly reasonCode: OutcomeCode;
  readonly reason: string;
  readonly previousVersion?: string;
  /** The document as received; undefined when it did not parse. */
  readonly document?: JobDocument;
  readonly bytesFetched: number;
  /** When the device started the execution and when its final update went out; epoch ms. */
  readonly startedMs: number;
  readonly endedMs: number;
  /** The fleet refused the final update (the job was canceled or had ended meanwhile): its Jobs error code. */
  readonly reportRefused?: string;
}

/** What a job needs from its device. */
export interface JobContext {
  readonly thing: string;
  readonly target: SimulatedTarget;
  readonly transport: Transport;
  readonly jobs: JobsClient;
  /** This device's scratch directory (downloads, unpacked artifacts), emptied after each job. */
  readonly dir: string;
  readonly trustedKeys: readonly string[];
  readonly requireSignature: boolean;
  readonly outcome: (jobId: string) => PlannedOutcome;
  readonly latencyMs: number;
  /** The bake when the job document names none (`rollout.bakeSeconds`); seconds. */
  readonly bakeSeconds: number;
  readonly download: { readonly encoding: 'json' | 'cbor'; readonly maxInFlightBlocks: number };
  readonly signal: AbortSignal;
  /** The active version of each model on this device: read before the job, set at the switch and the rollback. */
  readonly active: Map<string, string>;
  /** The active versions changed: publish the status. */
  readonly switched: () => Promise<void>;
  /** A deployment.step event, as the agent's `advance` sends one. */
  readonly event: (jobId: string, model: string, version: string, step: DeploymentStep) => Promise<void>;
  readonly online: () => Promise<void>;
  /** The final update is being sent (true) or was (false): a closing device lets it finish. */
  readonly reporting: (active: boolean) => void;
}

/** A stale `expectedVersion` is re-read and the update sent again, this many times (as deployment.ts). */
const MAX_VERSION_MISMATCHES = 3;
const DOWNLOAD_REQUEST_TIMEOUT_MS = 5_000; // ms, the agent's default (config download.requestTimeoutMs)
const DOWNLOAD_MAX_STALLS = 12; // the agent's default (config download.maxStalls)

/**
 * One job on a simulated device, through the agent's steps (device-agent/state.ts) and with its statuses: REJECTED
 * for a bad document or another architecture; the real download and verification; the stand-in install, self-test
 * and bake (install.ts); FAILED `<step>: <message>` with the error's code, after a rollback when it had switched;
 * SUCCEEDED with reasonCode OK, the variant and backend. The final update is retried like the agent's report.
 */
export async function runSimulatedJob(ctx: JobContext, execution: JobExecution): Promise<SeenJob> {
  const startedMs = Date.now();
  const { jobId } = execution;
  let document: JobDocument;
  try {
    document = parseJobDocument(
      typeof execution.jobDocument === 'string' ? JSON.parse(execution.jobDocument) : execution.jobDocument,
    );
  } catch (error) {
    const code = isProtocolError(error) ? error.code : 'JOB_DOCUMENT_INVALID';
    const ending = { model: 'unknown', version: 'unknown', status: 'REJECTED', reasonCode: code } as const;
    return finish(ctx, execution, startedMs, { ...ending, reason: messageOf(error) });
  }
  const { name, version } = document.model;
  const arch = document.target?.arch;
  if (arch !== undefined && arch !== 'any' && arch !== ctx.target.arch) {
    const reason = `the artifact is for ${arch}; this device is ${ctx.target.arch}`;
    const ending = { model: name, version, status: 'REJECTED', reasonCode: 'ARTIFACT_TARGET_MISMATCH' } as const;
    return finish(ctx, execution, startedMs, { ...ending, reason, document });
  }
  const previous = ctx.active.get(name);
  const install = new SimulatedInstall({ outcome: ctx.outcome(jobId), latencyMs: ctx.latencyMs, signal: ctx.signal });
  const dir = join(ctx.dir, jobId);
  const seen = { model: name, version, document, ...(previous === undefined ? {} : { previousVersion: previous }) };
  let step: DeploymentStep = 'downloading';
  const advance = async (next: DeploymentStep) => {
    step = next;
    await ctx.event(jobId, name, version, next);
  };
  let bytesFetched = 0;
  let switched = false;
  let selection: { variant: string; backend: string } | undefined;
  let failure: Ending | undefined;
  let variants: readonly string[] | undefined;
  const policy = { trustedKeys: ctx.trustedKeys, requireSignature: ctx.requireSignature, arch: ctx.target.arch };
  try {
    await retry(
      async () => {
        await ctx.online();
        ({ variants } = await fetchForJob(
          {
            transport: ctx.transport,
            thing: ctx.thing,
            encoding: ctx.download.encoding,
            maxInFlightBlocks: ctx.download.maxInFlightBlocks,
            requestTimeoutMs: DOWNLOAD_REQUEST_TIMEOUT_MS,
            maxStalls: DOWNLOAD_MAX_STALLS,
            signal: ctx.signal,
            onProgress: (p) => (bytesFetched = p.bytesFetched),
          },
          document,
          dir,
          policy,
        ));
      },
      { policy: RETRY_DEFAULTS.download, signal: ctx.signal, network: { wait: () => ctx.online() } },
    );
    await advance('verifying');
    await advance('staging');
    const manifest = await verifyForJob(document, dir, policy, variants);
    await advance('self-testing');
    selection = await install.selfTest(manifest, variants);
    await advance('activating');
    ctx.active.set(name, version);
    switched = true;
    await ctx.switched();
    await advance('validating');
    const bake = document.rollout?.bakeSeconds ?? ctx.bakeSeconds;
    if (bake > 0 || ctx.outcome(jobId) === 'guardrail-fail') {
      await advance('baking');
      await install.bake(name, version, bake);
    }
  } catch (error) {
    if (ctx.signal.aborted) throw new OutpostError('DEPLOYMENT_INTERRUPTED', 'simulated device stopping');
    const code = isOutpostError(error) ? error.code : 'INTERNAL';
    log.debug({ thing: ctx.thing, jobId, step, code, error: messageOf(error) }, 'simulated deployment failed');
    const failedStep = step;
    if (switched) {
      await advance('rolling-back');
      if (previous === undefined) ctx.active.delete(name);
      else ctx.active.set(name, previous);
      await ctx.switched();
    }
    const reason = `${failedStep}: ${messageOf(error)}`;
    failure = { ...seen, ...selection, status: 'FAILED', reasonCode: code, reason, bytesFetched };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  if (failure !== undefined) return finish(ctx, execution, startedMs, failure);
  if (selection === undefined) throw new OutpostError('INTERNAL', 'a simulated job ended with no selection');
  const reason = `${name}@${version} serving (${selection.variant} on ${selection.backend}) — simulated install`;
  return finish(ctx, execution, startedMs, {
    ...seen,
    ...selection,
    status: 'SUCCEEDED',
    reasonCode: 'OK',
    reason,
    bytesFetched,
  });
}

/** The `reporting` and `done` steps: the final UpdateJobExecution, then the record of what the device saw. */
/** How a job ended on the device: what the final update says. */
interface Ending {
  readonly model: string;
  readonly version: string;
  readonly status: SeenJob['status'];
  readonly reasonCode: OutcomeCode;
  readonly reason: string;
  readonly document?: JobDocument;
  readonly previousVersion?: string;
  readonly variant?: string;
  readonly backend?: string;
  readonly bytesFetched?: number;
}

async function finish(ctx: JobContext, execution: JobExecution, startedMs: number, ending: Ending): Promise<SeenJob> {
  const { model, version, status, reasonCode, reason } = ending;
  const { jobId } = execution;
  const bytesFetched = ending.bytesFetched ?? 0;
  const details: StatusDetails = { model, version, reasonCode, reason: reason.slice(0, 1000) || '-' };
  // The version this device ran before: the fleet records it as the execution's rollback target.
  if (ending.previousVersion !== undefined) details.previousVersion = ending.previousVersion;
  if (ending.variant !== undefined) details.variant = ending.variant;
  if (ending.backend !== undefined) details.backend = ending.backend;
  details.bytesFetched = String(bytesFetched);
  if (model !== 'unknown') await ctx.event(jobId, model, version, 'reporting');
  ctx.reporting(true);
  const refused = await report(ctx, jobId, status, details, execution.versionNumber).finally(() =>
    ctx.reporting(false),
  );
  if (model !== 'unknown') await ctx.event(jobId, model, version, 'done');
  return {
    jobId,
    model,
    version,
    status,
    reasonCode,
    reason,
    ...(ending.document === undefined ? {} : { document: ending.document }),
    ...(ending.previousVersion === undefined ? {} : { previousVersion: ending.previousVersion }),
    bytesFetched,
    startedMs,
    endedMs: Date.now(),
    ...(refused === undefined ? {} : { reportRefused: refused }),
  };
}

/** The agent's report (deployment.ts): until delivered; a stale version re-read; a refusal ends it (returned). */
async function report(
  ctx: JobContext,
  jobId: string,
  status: SeenJob['status'],
  details: StatusDetails,
  initialVersion: number | undefined,
): Promise<string | undefined> {
  let versionNumber = initialVersion;
  const send = async (): Promise<void> => {
    for (let mismatch = 0; ; mismatch++) {
      try {
        await ctx.jobs.update(jobId, status, details, versionNumber);
        return;
      } catch (error) {
        const stale = error instanceof JobsRejectedError && error.jobsCode === 'VersionMismatch';
        if (!stale || mismatch >= MAX_VERSION_MISMATCHES) throw error;
        versionNumber = (await ctx.jobs.describe(jobId))?.versionNumber ?? versionNumber;
      }
    }
  };
  try {
    await retry(send, { policy: RETRY_DEFAULTS.report, signal: ctx.signal, network: { wait: () => ctx.online() } });
    return undefined;
  } catch (error) {
    if (ctx.signal.aborted) throw new OutpostError('DEPLOYMENT_INTERRUPTED', 'simulated device stopping');
    if (!(error instanceof JobsRejectedError)) throw error;
    log.debug({ thing: ctx.thing, jobId, code: error.jobsCode }, 'job no longer accepts updates');
    return error.jobsCode;
  }
}
