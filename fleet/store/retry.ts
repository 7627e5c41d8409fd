import { setTimeout as sleep } from 'node:timers/promises';
import { isOutpostError } from '../../runtime/errors.js';
import { logger } from '../../runtime/log.js';

const log = logger('fleet.store');

/**
 * The store's own small retry for transient database errors (STORE_LOCKED, STORE_UNREACHABLE): a few attempts with
 * jittered exponential backoff, reading the error's `retryable` flag and nothing else. Kept local and tiny so it can
 * give way to the project's one retry policy (runtime/errors.ts categories) without touching the queries.
 * STORE_CONFLICT is retryable too but is never retried here: only the caller can decide again after a re-read.
 */
export interface StoreRetryPolicy {
  readonly attempts: number;
  readonly baseMs: number; // milliseconds before the second attempt
  readonly maxMs: number; // milliseconds, cap of one wait
}

export const DEFAULT_STORE_RETRY: StoreRetryPolicy = Object.freeze({ attempts: 5, baseMs: 50, maxMs: 2_000 });

export async function withStoreRetry<T>(
  operation: string,
  fn: () => Promise<T>,
  policy: StoreRetryPolicy = DEFAULT_STORE_RETRY,
): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (error) {
      const transient = isOutpostError(error) && error.retryable && error.code !== 'STORE_CONFLICT';
      if (!transient || attempt >= policy.attempts) throw error;
      const wait = Math.min(policy.maxMs, policy.baseMs * 2 ** (attempt - 1)) * (0.5 + Math.random() / 2);
      log.warn(
        { operation, attempt, code: error.code, waitMs: Math.round(wait) },
        'transient database error; retrying',
      );
      await sleep(wait);
    }
  }
}
