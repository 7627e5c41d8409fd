import type { JobStatus, StatusDetails } from '../../device-agent/protocol/index.js';
import type { AbortCriteria, RetryConfig, RolloutConfig } from './config.js';

/**
 * The rollout's decisions, with no I/O: whether a wave is healthy, whether abort criteria trip (per wave and over the
 * deployment), whether a failed execution is retried, and how many executions may be released now.
 */
export interface Outcome {
  readonly thing: string;
  readonly status: JobStatus;
  readonly statusDetails: StatusDetails;
}

export interface Figures {
  /** Things whose (latest) execution ended other than CANCELED. */
  readonly executed: number;
  readonly succeeded: number;
  readonly failed: number;
  readonly rejected: number;
  readonly timedOut: number;
  /** Of `failed`: the device's own guardrail rolled the version back during its bake (FAILED GUARDRAIL_*). */
  readonly guardrail: number;
  /** Of `succeeded`: things whose drift monitor reports the deployed version drifting from its baseline. */
  readonly drifting: number;
}

/** `drifting`: the things the registry has reporting the deployed version drifting (only DRIFT criteria ask). */
export function figures(outcomes: readonly Outcome[], drifting: ReadonlySet<string> = new Set()): Figures {
  const count = (status: JobStatus) => outcomes.filter((o) => o.status === status).length;
  const failed = count('FAILED');
  return {
    executed: outcomes.filter((o) => ['SUCCEEDED', 'FAILED', 'REJECTED', 'TIMED_OUT'].includes(o.status)).length,
    succeeded: count('SUCCEEDED'),
    failed,
    rejected: count('REJECTED'),
    timedOut: count('TIMED_OUT'),
    guardrail: outcomes.filter((o) => o.status === 'FAILED' && isGuardrail(o.statusDetails)).length,
    drifting: outcomes.filter((o) => o.status === 'SUCCEEDED' && drifting.has(o.thing)).length,
  };
}

export function isGuardrail(details: StatusDetails): boolean {
  return details.reasonCode?.startsWith('GUARDRAIL_') === true;
}

/**
 * A wave is healthy when every execution in it SUCCEEDED: an agent reports SUCCEEDED only after its guardrail bake
 * passed (device-agent/deployment-serve.ts, `baking` before `reporting`), and a bake that alarms ends FAILED
 * GUARDRAIL_*. `size` is the wave's number of things.
 */
export function healthy(f: Figures, size: number): boolean {
  return f.succeeded === size;
}

export interface Trip {
  readonly scope: 'wave' | 'deployment';
  readonly wave?: number;
  readonly criteria: AbortCriteria;
  readonly figures: Figures;
  /** failures of the criteria's type / executed, in percent. */
  readonly failurePercentage: number;
}

const failuresOf = (f: Figures, type: AbortCriteria['failureType']): number =>
  type === 'FAILED'
    ? f.failed
    : type === 'REJECTED'
      ? f.rejected
      : type === 'TIMED_OUT'
        ? f.timedOut
        : type === 'DRIFT'
          ? f.drifting
          : f.failed + f.rejected + f.timedOut;

/**
 * AbortCriteria: once at least `minNumberOfExecutedThings` have executed, the job aborts when the failures of
 * `failureType` reach `thresholdPercentage` of them (AWS IoT Jobs, "Job abort configuration").
 */
export function tripped(
  criteria: readonly AbortCriteria[],
  f: Figures,
  scope: Trip['scope'],
  wave?: number,
): Trip | undefined {
  for (const c of criteria) {
    if (f.executed < c.minNumberOfExecutedThings || f.executed === 0) continue;
    const failures = failuresOf(f, c.failureType);
    const failurePercentage = (100 * failures) / f.executed;
    if (failures > 0 && failurePercentage >= c.thresholdPercentage)
      return { scope, ...(wave === undefined ? {} : { wave }), criteria: c, figures: f, failurePercentage };
  }
  return undefined;
}

/** Whether an execution that ended `status` after `retries` earlier retries is tried again (RetryCriteria). */
export function shouldRetry(config: RetryConfig | undefined, status: JobStatus, retries: number): boolean {
  if (config === undefined || (status !== 'FAILED' && status !== 'TIMED_OUT')) return false;
  const allowed = Math.max(
    0,
    ...config.criteriaList
      .filter((c) => c.failureType === status || c.failureType === 'ALL')
      .map((c) => c.numberOfRetries),
  );
  return retries < allowed;
}

/**
 * The rate of notifications now (things per minute): maximumPerMinute, or an exponential rate that starts at
 * baseRatePerMinute and is multiplied by incrementFactor each time another `rateIncreaseCriteria` things were
 * notified (or succeeded), capped by maximumPerMinute (AWS IoT Jobs, "Job rollout configuration"). Undefined: no limit.
 */
export function ratePerMinute(
  config: RolloutConfig | undefined,
  counts: { readonly notified: number; readonly succeeded: number },
): number | undefined {
  if (config === undefined) return undefined;
  const max = config.maximumPerMinute;
  const exp = config.exponentialRate;
  if (exp === undefined) return max;
  const { numberOfNotifiedThings, numberOfSucceededThings } = exp.rateIncreaseCriteria;
  const steps =
    numberOfNotifiedThings !== undefined
      ? Math.floor(counts.notified / numberOfNotifiedThings)
      : Math.floor(counts.succeeded / (numberOfSucceededThings ?? 1));
  const rate = Math.floor(exp.baseRatePerMinute * exp.incrementFactor ** Math.min(steps, 64));
  return Math.min(rate, max ?? 1000);
}

/** How many more may be released now, given how many were in the last minute. */
export function releaseBudget(rate: number | undefined, releasedLastMinute: number, waiting: number): number {
  if (rate === undefined) return waiting;
  return Math.max(0, Math.min(waiting, rate - releasedLastMinute));
}
