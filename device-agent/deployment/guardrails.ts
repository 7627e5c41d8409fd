import { OutpostError, isOutpostError, type ErrorCode } from '../../runtime/errors.js';
import { logger } from '../../runtime/log.js';
import { latencyStats } from '../../runtime/tuning/index.js';
import { CALLER_FAULTS, type InferenceEvent, type ServiceObserver } from '../../runtime/server/index.js';

const log = logger('agent.guardrails');

export interface GuardrailOptions {
  /** How long after a deployment activates its version is watched; seconds. */
  readonly windowSeconds: number;
  /** Calls counted before any judgement: three calls with one failure prove nothing. */
  readonly minRequests: number;
  /** Alarm when failed calls / calls passes this (0–1); absent: no error-rate alarm. */
  readonly maxErrorRate?: number;
  /** Alarm when the p99 of the most recent `latencySamples` calls passes this; ms; absent: no latency alarm. */
  readonly maxP99Ms?: number;
  /** Latencies kept per watch, the most recent (a ring): memory is fixed however busy the model. */
  readonly latencySamples?: number;
  /** Failures that are the caller's, not the version's (malformed input): such calls are not counted at all. */
  readonly ignoreCodes?: Iterable<ErrorCode>;
  /** Epoch milliseconds; tests pass a fake clock. */
  readonly now?: () => number;
}

export const GUARDRAIL_DEFAULTS = Object.freeze({
  latencySamples: 1024, // calls
  /** The caller's mistakes, which the server answers with 400 (runtime/server/http/status.ts). */
  ignoreCodes: CALLER_FAULTS,
});

export interface GuardrailStats {
  readonly model: string;
  readonly version: string;
  /** Calls counted since the watch started. */
  readonly requests: number;
  readonly errors: number;
  readonly errorRate: number;
  /** Over the most recent `latencySamples` calls; undefined before the first. */
  readonly p50Ms: number | undefined;
  readonly p99Ms: number | undefined;
  readonly elapsedSeconds: number;
  readonly windowSeconds: number;
}

export interface GuardrailAlarm {
  readonly code: 'GUARDRAIL_ERROR_RATE' | 'GUARDRAIL_LATENCY';
  readonly message: string;
  readonly stats: GuardrailStats;
}

/** The alarm as an error, for a rollback's reason (`outcome.code` = the alarm's code). */
export function guardrailError(alarm: GuardrailAlarm): OutpostError {
  return new OutpostError(alarm.code, alarm.message, { details: { ...alarm.stats } });
}

/** Nearest rank of the p99 among `n` samples, as runtime/tuning/stats.ts `percentile` computes it. */
const p99Rank = (n: number): number => Math.min(n - 1, Math.max(0, Math.ceil((99 / 100) * n) - 1));

class Watch {
  requests = 0;
  errors = 0;
  private readonly ring: Float64Array;
  private filled = 0;
  private next = 0;
  /** Samples in the ring above maxP99Ms: p99 > max exactly when more than n − rank(p99) samples are. */
  private slow = 0;

  constructor(
    readonly model: string,
    readonly version: string,
    readonly startedAt: number,
    readonly windowMs: number,
    readonly onAlarm: (alarm: GuardrailAlarm) => void,
    samples: number,
    private readonly maxP99Ms: number | undefined,
  ) {
    this.ring = new Float64Array(samples);
  }

  record(ms: number, failed: boolean): void {
    this.requests++;
    if (failed) this.errors++;
    if (this.filled === this.ring.length && this.isSlow(this.ring[this.next] ?? 0)) this.slow--;
    this.ring[this.next] = ms;
    this.next = (this.next + 1) % this.ring.length;
    if (this.filled < this.ring.length) this.filled++;
    if (this.isSlow(ms)) this.slow++;
  }

  private isSlow(ms: number): boolean {
    return this.maxP99Ms !== undefined && ms > this.maxP99Ms;
  }

  /** O(1): the count of slow samples decides it, no sort per call. */
  p99Exceeded(): boolean {
    return this.maxP99Ms !== undefined && this.filled > 0 && this.slow >= this.filled - p99Rank(this.filled);
  }

  stats(now: number): GuardrailStats {
    const latency = this.filled > 0 ? latencyStats(this.ring.subarray(0, this.filled)) : undefined;
    return {
      model: this.model,
      version: this.version,
      requests: this.requests,
      errors: this.errors,
      errorRate: this.requests > 0 ? this.errors / this.requests : 0,
      p50Ms: latency?.p50,
      p99Ms: latency?.p99,
      elapsedSeconds: (now - this.startedAt) / 1000,
      windowSeconds: this.windowMs / 1000,
    };
  }
}

/**
 * CodeDeploy's alarm-based rollback, on the device: for `windowSeconds` after a version goes live the agent watches
 * its production calls, and once `minRequests` have been counted, the first call after which the error rate or the
 * p99 latency passes its threshold raises one alarm (the agent rolls back). Counters are kept here, per watched
 * model, independent of the metrics module; each call costs a map lookup and a few additions.
 */
export class Guardrails {
  readonly observer: ServiceObserver = { onInference: (event) => this.onInference(event) };
  private readonly watches = new Map<string, Watch>();
  private readonly now: () => number;
  private readonly ignore: ReadonlySet<string>;

  constructor(private readonly options: GuardrailOptions) {
    const { windowSeconds, minRequests, maxErrorRate, maxP99Ms } = options;
    const bad = [
      windowSeconds > 0 ? undefined : `windowSeconds ${windowSeconds} (> 0)`,
      Number.isInteger(minRequests) && minRequests >= 1 ? undefined : `minRequests ${minRequests} (an integer ≥ 1)`,
      maxErrorRate === undefined || (maxErrorRate >= 0 && maxErrorRate < 1)
        ? undefined
        : `maxErrorRate ${maxErrorRate} (0 ≤ r < 1)`,
      maxP99Ms === undefined || maxP99Ms > 0 ? undefined : `maxP99Ms ${maxP99Ms} (> 0)`,
    ].filter((s) => s !== undefined);
    if (bad.length > 0) throw new OutpostError('INVALID_ARGUMENT', `guardrails: bad ${bad.join(', ')}`);
    this.now = options.now ?? Date.now;
    this.ignore = new Set(options.ignoreCodes ?? GUARDRAIL_DEFAULTS.ignoreCodes);
  }

  /**
   * Watches `version` of `model` from now for `windowSeconds` (the options' unless given), replacing any earlier
   * watch of `model`.
   */
  watch(
    model: string,
    version: string,
    onAlarm: (alarm: GuardrailAlarm) => void,
    windowSeconds = this.options.windowSeconds,
  ): void {
    this.watches.set(
      model,
      new Watch(
        model,
        version,
        this.now(),
        windowSeconds * 1000,
        onAlarm,
        this.options.latencySamples ?? GUARDRAIL_DEFAULTS.latencySamples,
        this.options.maxP99Ms,
      ),
    );
  }

  stop(model: string): void {
    this.watches.delete(model);
  }

  /** Whether `model` is still watched (false once its window passed, it alarmed, or it was stopped). */
  watching(model: string): boolean {
    const watch = this.watches.get(model);
    if (watch !== undefined && this.now() - watch.startedAt > watch.windowMs) this.watches.delete(model);
    return this.watches.has(model);
  }

  /** What the watch of `model` has counted so far, for status reports. */
  report(model: string): GuardrailStats | undefined {
    return this.watches.get(model)?.stats(this.now());
  }

  private onInference(event: InferenceEvent): void {
    const watch = this.watches.get(event.name);
    if (watch === undefined || watch.version !== event.version) return;
    const now = this.now();
    if (now - watch.startedAt > watch.windowMs) {
      this.watches.delete(event.name);
      return;
    }
    const error = event.error;
    if (error !== undefined && isOutpostError(error) && this.ignore.has(error.code)) return;
    watch.record(event.ms, error !== undefined);
    if (watch.requests < this.options.minRequests) return;
    const { maxErrorRate, maxP99Ms } = this.options;
    let alarm: Pick<GuardrailAlarm, 'code' | 'message'> | undefined;
    if (maxErrorRate !== undefined && watch.errors / watch.requests > maxErrorRate) {
      alarm = {
        code: 'GUARDRAIL_ERROR_RATE',
        message: `${event.name}@${event.version}: ${watch.errors} of ${watch.requests} calls failed (${pct(watch.errors / watch.requests)}), more than the ${pct(maxErrorRate)} allowed`,
      };
    } else if (maxP99Ms !== undefined && watch.p99Exceeded()) {
      alarm = {
        code: 'GUARDRAIL_LATENCY',
        message: `${event.name}@${event.version}: p99 latency passed ${maxP99Ms} ms after ${watch.requests} calls`,
      };
    }
    if (alarm === undefined) return;
    this.watches.delete(event.name);
    const stats = watch.stats(now);
    const message =
      alarm.code === 'GUARDRAIL_LATENCY'
        ? `${alarm.message} (p99 ${stats.p99Ms?.toFixed(1) ?? '?'} ms)`
        : alarm.message;
    try {
      watch.onAlarm({ code: alarm.code, message, stats });
    } catch (error) {
      log.error({ model: event.name, error }, 'guardrail alarm handler failed');
    }
  }
}

const pct = (rate: number): string => `${(rate * 100).toFixed(1)} %`;
