import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import * as z from 'zod';
import { ERROR_CODES, fromFsError, type ErrorCode } from '../../runtime/errors.js';
import { readJson, writeJsonAtomic } from './atomic-files.js';
import { servingPlanSchema } from './model-store.js';

/**
 * A deployment's steps, in order. The state is persisted before each step starts, and every step is idempotent,
 * so after SIGKILL the agent re-enters the persisted step and finishes it (docs/architecture.md, "On the device":
 * "after a kill -9 at any instant the agent restarts into a state it can explain and finish").
 *
 *   downloading → verifying → staging → self-testing → activating → validating → [baking] → reporting → done
 *        └──────────── any failure ────────────┴→ rolling-back (if activated) → reporting (FAILED) → done
 */
export const DEPLOYMENT_STEPS = Object.freeze([
  'downloading',
  'verifying',
  'staging',
  'self-testing',
  'activating',
  'validating',
  'baking',
  'rolling-back',
  'reporting',
  'done',
] as const);
export type DeploymentStep = (typeof DEPLOYMENT_STEPS)[number];

/** A deployment's reason code: `OK` for success, else the OutpostError code it failed with (runtime/errors.ts). */
export type OutcomeCode = ErrorCode | 'OK';
const OUTCOME_CODES = Object.freeze(['OK', ...Object.keys(ERROR_CODES)] as [OutcomeCode, ...OutcomeCode[]]);

export const outcomeSchema = z.object({
  status: z.enum(['SUCCEEDED', 'FAILED', 'REJECTED']),
  /** A stable reason code for scripts and the fleet; one this build does not know (a newer agent's) reads as INTERNAL. */
  code: z.enum(OUTCOME_CODES).catch('INTERNAL'),
  message: z.string(),
});
export type Outcome = z.infer<typeof outcomeSchema>;

export const deploymentStateSchema = z.object({
  jobId: z.string(),
  model: z.string(),
  version: z.string(),
  step: z.enum(DEPLOYMENT_STEPS),
  /** The job document as received (validated again on resume). */
  document: z.unknown(),
  /** IoT Jobs execution version: the `expectedVersion` of the next update. */
  versionNumber: z.number().int(),
  executionNumber: z.number().int().optional(),
  /** Active version when the deployment started. */
  previous: z.string().optional(),
  /** The serving plan before activation: what a rollback restores (production weights, shadow). */
  previousPlan: servingPlanSchema.optional(),
  bytesTotal: z.number().int().nonnegative(),
  /** Distinct artifact bytes on disk (blocks verified and written). */
  bytesReceived: z.number().int().nonnegative(),
  /** Every block byte that arrived, duplicates and corrupt blocks included, across restarts. */
  bytesFetched: z.number().int().nonnegative(),
  variant: z.string().optional(),
  backend: z.enum(['native', 'wasm']).optional(),
  outcome: outcomeSchema.optional(),
  /** Set just before staging renames the new version into the store (a restart then knows whose install it is). */
  installing: z.boolean().optional(),
  /** Files layout: the variants this deployment fetches (best first), chosen once the manifest arrived. */
  variants: z.array(z.string()).optional(),
  /** Files layout: this job's own install lacks a variant it now fetches (self-test fallback): install it again. */
  reinstall: z.boolean().optional(),
  /** The verified artifact was already installed, manifest for manifest: a redeploy, nothing was written. */
  alreadyInstalled: z.boolean().optional(),
  /** End of the guardrail watch (baking), ISO time: set once, so a restart watches only what is left. */
  bakeUntil: z.string().optional(),
  startedAt: z.string(),
  updatedAt: z.string(),
  /** Times the agent (re)entered this deployment: 1 + restarts. */
  attempts: z.number().int().positive(),
});
export type DeploymentState = z.infer<typeof deploymentStateSchema>;

export class DeploymentStore {
  constructor(readonly dir: string) {}

  path(jobId: string): string {
    return join(this.dir, `${jobId}.json`);
  }

  async read(jobId: string): Promise<DeploymentState | undefined> {
    return readJson(this.path(jobId), deploymentStateSchema);
  }

  /** Persists the state (atomically) with a fresh `updatedAt`; returns what was written. */
  async write(state: DeploymentState): Promise<DeploymentState> {
    const next = { ...state, updatedAt: new Date().toISOString() };
    await writeJsonAtomic(this.path(state.jobId), next);
    return next;
  }

  async all(): Promise<DeploymentState[]> {
    let names: string[];
    try {
      names = (await readdir(this.dir)).filter((n) => n.endsWith('.json'));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw fromFsError(error, this.dir, 'read');
    }
    const states: DeploymentState[] = [];
    for (const name of names) {
      const state = await this.read(name.slice(0, -'.json'.length));
      if (state !== undefined) states.push(state);
    }
    return states.sort((a, b) => a.startedAt.localeCompare(b.startedAt));
  }

  /** Deployments the agent must finish: anything not `done`. */
  async unfinished(): Promise<DeploymentState[]> {
    return (await this.all()).filter((s) => s.step !== 'done');
  }

  /** Keeps the newest `keep` finished records for `agent status`; older ones go. */
  async prune(keep = 20): Promise<void> {
    const done = (await this.all()).filter((s) => s.step === 'done');
    for (const s of done.slice(0, Math.max(0, done.length - keep))) await rm(this.path(s.jobId), { force: true });
  }
}
