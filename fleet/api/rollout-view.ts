import { formatPhase } from '../rollouts/strategy.js';
import { type RolloutStrategy, readRollout } from '../rollouts/plan.js';
import { bakeRemaining, latestByThing } from '../rollouts/waves.js';
import type { DeploymentRecord, ExecutionRecord, WaveRecord } from '../store/index.js';

/**
 * A deployment's rollout as the API shows it (`fleet status`): the strategy as given and stored, each wave with its
 * devices by status (each thing's latest execution), rolled back (its rollback execution SUCCEEDED) and the bake
 * left, and what tripped an abort.
 */
export interface WaveView {
  readonly wave: number;
  readonly state: string;
  readonly devices: number;
  readonly queued: number;
  readonly inProgress: number;
  readonly succeeded: number;
  readonly failed: number;
  readonly canceled: number;
  readonly rolledBack: number;
  readonly bakeMs: number;
  readonly bakeRemainingMs: number | null;
  readonly bakeUntil: string | null;
  readonly startedAt: string | null;
}

export function rolloutView(
  d: DeploymentRecord,
  executions: readonly ExecutionRecord[],
  waves: readonly WaveRecord[],
  rolledBack: ReadonlySet<string>,
  nowMs: number,
) {
  const rollout: RolloutStrategy = readRollout(d.strategy, d.id);
  const latest = latestByThing(executions);
  const waveViews: WaveView[] = waves.map((w) => {
    const members = latest.filter((e) => (e.wave ?? 0) === w.wave);
    const count = (...statuses: string[]) => members.filter((e) => statuses.includes(e.status)).length;
    const remaining = bakeRemaining(w, nowMs);
    return {
      wave: w.wave,
      state: w.state,
      devices: members.length,
      queued: count('QUEUED'),
      inProgress: count('IN_PROGRESS'),
      succeeded: count('SUCCEEDED'),
      failed: count('FAILED', 'REJECTED', 'TIMED_OUT'),
      canceled: count('CANCELED', 'REMOVED'),
      rolledBack: members.filter((e) => rolledBack.has(e.thing)).length,
      bakeMs: w.bakeMs,
      bakeRemainingMs: remaining ?? null,
      bakeUntil: w.bakeUntilMs === undefined ? null : new Date(w.bakeUntilMs).toISOString(),
      startedAt: w.startedMs === undefined ? null : new Date(w.startedMs).toISOString(),
    };
  });
  return {
    type: rollout.type,
    strategy: rollout.strategy,
    then: rollout.then ?? null,
    phases: rollout.phases.map(formatPhase),
    seed: rollout.seed,
    jobExecutionsRolloutConfig: rollout.jobExecutionsRolloutConfig ?? null,
    abortConfig: rollout.abortConfig ?? null,
    jobExecutionsRetryConfig: rollout.jobExecutionsRetryConfig ?? null,
    rollbackOf: rollout.rollbackOf ?? null,
    waves: waveViews,
    abort: d.rollout.abort ?? null,
    rollbacks: d.rollout.rollbacks ?? {},
    rolledBack: [...rolledBack].sort(),
  };
}

export type RolloutView = ReturnType<typeof rolloutView>;
