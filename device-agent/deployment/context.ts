import { join } from 'node:path';
import type { VerdictFile } from '../../runtime/artifact/index.js';
import { OutpostError } from '../../runtime/errors.js';
import type { Model } from '../../runtime/model/index.js';
import type { Pipeline } from '../../runtime/pipeline/index.js';
import type { TuneChoiceFile } from '../../runtime/tuning/index.js';
import type { AgentConfig } from '../config.js';
import type { Guardrails } from './guardrails.js';
import type { JobsClient } from '../jobs-client.js';
import { parseJobDocument, type JobDocument } from '../protocol/index.js';
import type { ActiveModels } from '../serving/active-models.js';
import type { DeploymentState, DeploymentStep, DeploymentStore } from '../storage/deployment-records.js';
import type { ModelStore } from '../storage/model-store.js';
import type { Transport } from '../transport/types.js';

/** What every deployment step works with: the agent's stores, served models, connection and settings. */
export interface DeploymentContext {
  readonly config: AgentConfig;
  readonly store: ModelStore;
  readonly deployments: DeploymentStore;
  readonly models: ActiveModels;
  /** Present when guardrails are configured: a deployment bakes under watch before it succeeds. */
  readonly guardrails: Guardrails | undefined;
  /** `outpost tune` choices by model (threads, and variant/backend of the tuned version). */
  readonly tuning: ReadonlyMap<string, TuneChoiceFile> | undefined;
  /** Remembered hashes of installed files (PlanContext.verdicts). */
  readonly verdicts?: VerdictFile | undefined;
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
  /** Models (or pipelines) loaded by a self-test in this process, by job id, waiting for their activation step. */
  readonly tested: Map<string, Model | Pipeline>;
}

/** One step of the state machine (storage/deployment-records.ts): does its work and returns the state it persisted for the next. */
export type Step = (ctx: DeploymentContext, state: DeploymentState) => Promise<DeploymentState>;

export function downloadDir(ctx: DeploymentContext, jobId: string): string {
  return join(ctx.downloadsDir, jobId);
}

/** Persists the next state, then tells the fleet (spooled event, best-effort IN_PROGRESS) and the status. */
export async function advance(
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

export function documentOf(state: DeploymentState): JobDocument {
  return parseJobDocument(state.document);
}

/** Resolves when the transport is connected (or the agent stops). */
export function online(ctx: DeploymentContext): Promise<void> {
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
