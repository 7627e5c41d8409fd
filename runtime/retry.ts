import { setTimeout as sleep } from 'node:timers/promises';
import { OutpostError, errorCategory, type ErrorCategory } from './errors.js';

/** Exponential backoff: minMs, 2·minMs, 4·minMs … capped at maxMs, each delay spread by ±jitter. */
export interface BackoffPolicy {
  readonly minMs: number; // milliseconds
  readonly maxMs: number; // milliseconds
  readonly jitter: number; // fraction, 0..1
}

export interface RetryPolicy extends BackoffPolicy {
  /** Tries of a `retryable` failure, the first included; absent: no limit. Network waits are not counted. */
  readonly maxAttempts?: number;
}

/**
 * The delay before retry number `failures` (0-based): exponential with jitter, so a fleet that failed at the same
 * instant does not come back at the same instant (AWS Architecture Blog, "Exponential Backoff And Jitter").
 */
export function backoffDelay(policy: BackoffPolicy, failures: number, random: () => number = Math.random): number {
  const base = Math.min(policy.maxMs, policy.minMs * 2 ** Math.min(failures, 30));
  const spread = base * policy.jitter * (2 * random() - 1);
  return Math.round(Math.min(policy.maxMs, Math.max(0, base + spread)));
}

/**
 * What a `wait-for-network` failure does: `wait` for `online()` (then try again, attempts not spent: the agent's
 * downloads and reports outlast any outage), `stop` (rethrow: the caller's own reconnect handler carries on), or
 * `backoff` (count it like a retryable failure: for callers with no way to hear the network come back).
 */
export type NetworkHandling =
  { readonly wait: (signal: AbortSignal | undefined) => Promise<void> } | 'stop' | 'backoff';

export interface RetryEvent {
  readonly error: unknown;
  readonly category: Exclude<ErrorCategory, 'fatal'>;
  /** The attempt that just failed, from 1. */
  readonly attempt: number;
  /** How long until the next attempt. */
  readonly delayMs: number; // milliseconds
}

export interface RetryOptions {
  readonly policy: RetryPolicy;
  /** Aborting ends a backoff at once: `retry` rejects with the signal's reason, without another attempt. */
  readonly signal?: AbortSignal;
  /** Default `backoff`. */
  readonly network?: NetworkHandling;
  /** Before each backoff (for the caller's log line). */
  readonly onRetry?: (event: RetryEvent) => void;
  readonly random?: () => number;
}

/**
 * Runs `fn` until it succeeds, driven by the category of what it throws (runtime/errors.ts, ERROR_CATEGORIES):
 * `fatal` is rethrown at once; `retryable` is tried again after a jittered exponential backoff, at most
 * `policy.maxAttempts` times in all (then the last error is rethrown, its message saying how many attempts were
 * made); `wait-for-network` as `network` says. Every wait honours `signal`.
 */
export async function retry<T>(fn: (attempt: number) => Promise<T>, options: RetryOptions): Promise<T> {
  const { policy, signal, network = 'backoff', random = Math.random } = options;
  let failures = 0; // retryable failures so far
  let outages = 0; // network failures in a row (their own backoff, never exhausted)
  for (let attempt = 1; ; attempt++) {
    signal?.throwIfAborted();
    try {
      return await fn(attempt);
    } catch (error) {
      if (signal?.aborted === true) throw error;
      const category = errorCategory(error);
      if (category === 'fatal') throw error;
      const waits = category === 'wait-for-network' && network !== 'backoff';
      if (waits && network === 'stop') throw error;
      let delayMs: number;
      if (waits) {
        delayMs = backoffDelay(policy, outages++, random);
      } else {
        failures++;
        outages = 0;
        if (policy.maxAttempts !== undefined && failures >= policy.maxAttempts) throw exhausted(error, failures);
        delayMs = backoffDelay(policy, failures - 1, random);
      }
      options.onRetry?.({ error, category, attempt, delayMs });
      await sleep(delayMs, undefined, { signal });
      if (waits && typeof network === 'object') await network.wait(signal);
    }
  }
}

/** The last error of a retry that ran out of attempts, saying so (same code; no longer retryable). */
function exhausted(error: unknown, attempts: number): unknown {
  if (!(error instanceof OutpostError)) return error;
  return new OutpostError(error.code, `${error.message} (gave up after ${attempts} attempts)`, {
    cause: error,
    retryable: false,
    details: { ...error.details, attempts },
  });
}
