import { createHash } from 'node:crypto';
import type { DeploymentStrategy } from '../store/index.js';
import {
  type AbortConfig,
  type RetryConfig,
  type RolloutConfig,
  abortConfigSchema,
  check,
  retryConfigSchema,
  rolloutConfigSchema,
} from './config.js';
import { type Phase, type WaveSpec, parseStrategy, waveSizes } from './strategy.js';

/**
 * A deployment's rollout as it is stored (deployments.strategy_json), so a worker that restarts reads back exactly
 * what the operator asked for, and the waves it led to (rollout_waves, and each execution's `wave`). Pure.
 */
export interface RolloutStrategy extends DeploymentStrategy {
  /** The first phase's kind, or `rollback` for a deployment that puts previous versions back. */
  readonly type: 'all-at-once' | 'canary' | 'linear' | 'rollback';
  /** As given: `--strategy` and `--then`. */
  readonly strategy: string;
  readonly then?: string;
  readonly phases: readonly Phase[];
  /** Wave membership is a function of the targets and this seed (the deployment id unless given). */
  readonly seed: string;
  readonly jobExecutionsRolloutConfig?: RolloutConfig;
  readonly abortConfig?: AbortConfig;
  readonly jobExecutionsRetryConfig?: RetryConfig;
  /** rollback: the deployment whose switched devices it returns to their previous version. */
  readonly rollbackOf?: string;
}

export interface RolloutRequest {
  readonly strategy?: string;
  readonly then?: string;
  readonly seed?: string;
  readonly jobExecutionsRolloutConfig?: unknown;
  readonly abortConfig?: unknown;
  readonly jobExecutionsRetryConfig?: unknown;
}

/** Validates a request's rollout settings (STRATEGY_INVALID naming the field) into what is stored. */
export function buildRollout(request: RolloutRequest, deploymentId: string): RolloutStrategy {
  const text = request.strategy ?? 'all-at-once';
  const phases = parseStrategy(text, request.then);
  const first = phases[0] ?? { kind: 'all-at-once' };
  return {
    type: first.kind,
    strategy: text,
    ...(request.then === undefined ? {} : { then: request.then }),
    phases,
    seed: request.seed ?? deploymentId,
    ...(request.jobExecutionsRolloutConfig === undefined
      ? {}
      : {
          jobExecutionsRolloutConfig: check(
            rolloutConfigSchema,
            request.jobExecutionsRolloutConfig,
            'jobExecutionsRolloutConfig',
          ),
        }),
    ...(request.abortConfig === undefined
      ? {}
      : { abortConfig: check(abortConfigSchema, request.abortConfig, 'abortConfig') }),
    ...(request.jobExecutionsRetryConfig === undefined
      ? {}
      : {
          jobExecutionsRetryConfig: check(
            retryConfigSchema,
            request.jobExecutionsRetryConfig,
            'jobExecutionsRetryConfig',
          ),
        }),
  };
}

/** The stored strategy as a rollout; deployments written before rollouts (`{ type: 'all-at-once' }`) read as one. */
export function readRollout(stored: DeploymentStrategy, deploymentId: string): RolloutStrategy {
  if (Array.isArray(stored.phases)) return stored as RolloutStrategy;
  return { type: 'all-at-once', strategy: 'all-at-once', phases: [{ kind: 'all-at-once' }], seed: deploymentId };
}

/** Whether the controller has anything to pace: more than one wave, a rate, an abort or retry setting. */
export function isPaced(rollout: RolloutStrategy): boolean {
  return (
    rollout.type === 'canary' ||
    rollout.type === 'linear' ||
    rollout.jobExecutionsRolloutConfig !== undefined ||
    rollout.abortConfig !== undefined ||
    rollout.jobExecutionsRetryConfig !== undefined
  );
}

export interface Member {
  readonly name: string;
  /** What spreads the waves: the target profile the thing reported (unknown ones form their own stratum). */
  readonly stratum: string;
}

const rank = (seed: string, name: string): string => createHash('sha256').update(`${seed}\n${name}`).digest('hex');

/**
 * The order things are taken into waves: each stratum (target profile) shuffled by a seeded hash, then the strata
 * interleaved by relative position, so every prefix — the canary first of all — holds each kind of device in
 * proportion (at least one of each as soon as the prefix is as large as the number of kinds, largest first).
 * Deterministic: the same targets and seed always give the same order, across restarts and workers.
 */
export function waveOrder(members: readonly Member[], seed: string): string[] {
  const strata = new Map<string, Member[]>();
  for (const m of members) strata.set(m.stratum, [...(strata.get(m.stratum) ?? []), m]);
  const placed: { name: string; position: number; tie: string }[] = [];
  for (const [, list] of strata) {
    const sorted = [...list].sort((a, b) => (rank(seed, a.name) < rank(seed, b.name) ? -1 : 1));
    sorted.forEach((m, i) =>
      placed.push({ name: m.name, position: (i + 0.5) / sorted.length, tie: rank(seed, m.name) }),
    );
  }
  placed.sort((a, b) => a.position - b.position || (a.tie < b.tie ? -1 : a.tie > b.tie ? 1 : 0));
  return placed.map((p) => p.name);
}

export interface WavePlan {
  readonly waves: readonly WaveSpec[];
  /** Thing → wave index (0 is the first). */
  readonly membership: ReadonlyMap<string, number>;
}

/** Waves and who is in each, for the deployment's targets. */
export function planWaves(rollout: RolloutStrategy, members: readonly Member[]): WavePlan {
  const waves = waveSizes(rollout.phases, members.length);
  const order = waveOrder(members, rollout.seed);
  const membership = new Map<string, number>();
  let next = 0;
  waves.forEach((wave, index) => {
    for (const name of order.slice(next, next + wave.size)) membership.set(name, index);
    next += wave.size;
  });
  return { waves, membership };
}
