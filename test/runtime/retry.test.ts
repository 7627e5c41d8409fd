import { describe, expect, it } from 'vitest';
import { ERROR_CATEGORIES, ERROR_CODES, OutpostError, errorCategory } from '../../runtime/errors.js';
import { backoffDelay, retry, type RetryEvent } from '../../runtime/retry.js';

const FAST = Object.freeze({ minMs: 1, maxMs: 4, jitter: 0 }); // ms: logic tests, not timing
const HOUR = 3_600_000; // ms: a backoff no test may sit out

/** A function failing with `errors` in turn, then answering `done`; counts its calls. */
function failing(...errors: Error[]) {
  const calls = { count: 0 };
  const fn = () => {
    const error = errors[calls.count++];
    return error === undefined ? Promise.resolve('done') : Promise.reject(error);
  };
  return { fn, calls };
}

describe('error categories (runtime/errors.ts)', () => {
  it('gives every code a category, network codes their own', () => {
    expect(Object.keys(ERROR_CATEGORIES).sort()).toEqual(Object.keys(ERROR_CODES).sort());
    expect(ERROR_CATEGORIES.TRANSPORT_OFFLINE).toBe('wait-for-network');
    expect(ERROR_CATEGORIES.BROKER_UNREACHABLE).toBe('wait-for-network');
    expect(ERROR_CATEGORIES.DOWNLOAD_FAILED).toBe('retryable');
    expect(ERROR_CATEGORIES.TRANSPORT_SUBSCRIBE_REJECTED).toBe('fatal');
    expect(ERROR_CATEGORIES.VERSION_CONFLICT).toBe('fatal');
  });

  it("follows an error's own retryable override, and treats foreign errors as fatal", () => {
    expect(errorCategory(new OutpostError('DOWNLOAD_FAILED', 'x', { retryable: false }))).toBe('fatal');
    expect(errorCategory(new OutpostError('TRANSPORT_PUBLISH_REJECTED', 'quota', { retryable: true }))).toBe(
      'retryable',
    );
    expect(errorCategory(new Error('boom'))).toBe('fatal');
    expect(errorCategory('a string')).toBe('fatal');
  });
});

describe('retry()', () => {
  it('rethrows a fatal error at once, without another attempt', async () => {
    const refused = new OutpostError('TRANSPORT_SUBSCRIBE_REJECTED', 'Not authorized (0x87)');
    const { fn, calls } = failing(refused);
    await expect(retry(fn, { policy: { ...FAST, maxAttempts: 5 } })).rejects.toBe(refused);
    expect(calls.count).toBe(1);
  });

  it('backs off between retryable failures and gives up after maxAttempts, saying so', async () => {
    const stall = () => new OutpostError('DOWNLOAD_FAILED', 'no block arrived');
    const { fn, calls } = failing(stall(), stall(), stall(), stall());
    const events: RetryEvent[] = [];
    const error = await retry(fn, { policy: { ...FAST, maxAttempts: 3 }, onRetry: (e) => events.push(e) }).catch(
      (e: unknown) => e,
    );
    expect(calls.count).toBe(3);
    expect(error).toMatchObject({ code: 'DOWNLOAD_FAILED', retryable: false, details: { attempts: 3 } });
    expect((error as Error).message).toBe('no block arrived (gave up after 3 attempts)');
    expect(events.map((e) => [e.attempt, e.delayMs, e.category])).toEqual([
      [1, 1, 'retryable'],
      [2, 2, 'retryable'],
    ]);
  });

  it('draws each delay from the jittered exponential backoff', async () => {
    const policy = { minMs: 1, maxMs: 8, jitter: 0.5, maxAttempts: 4 };
    const random = () => 0.9;
    const stall = () => new OutpostError('TIMEOUT', 'no reply');
    const events: RetryEvent[] = [];
    await retry(failing(stall(), stall(), stall()).fn, { policy, random, onRetry: (e) => events.push(e) });
    expect(events.map((e) => e.delayMs)).toEqual([0, 1, 2].map((n) => backoffDelay(policy, n, random)));
  });

  it('waits for the network without spending attempts, when told how', async () => {
    const offline = () => new OutpostError('TRANSPORT_OFFLINE', 'not connected');
    const { fn, calls } = failing(offline(), offline(), offline(), new OutpostError('TIMEOUT', 'slow'));
    let waits = 0;
    const network = {
      wait: () => {
        waits++;
        return Promise.resolve();
      },
    };
    await expect(retry(fn, { policy: { ...FAST, maxAttempts: 2 }, network })).resolves.toBe('done');
    expect([calls.count, waits]).toEqual([5, 3]);
  });

  it("rethrows a network failure with network: 'stop', and counts it with 'backoff'", async () => {
    const offline = new OutpostError('TRANSPORT_OFFLINE', 'not connected');
    await expect(retry(failing(offline).fn, { policy: FAST, network: 'stop' })).rejects.toBe(offline);
    const counted = failing(offline, offline, offline);
    await expect(retry(counted.fn, { policy: { ...FAST, maxAttempts: 2 }, network: 'backoff' })).rejects.toMatchObject({
      code: 'TRANSPORT_OFFLINE',
      details: { attempts: 2 },
    });
    expect(counted.calls.count).toBe(2);
  });

  it('ends a backoff as soon as the signal aborts, before the backoff would have ended', async () => {
    const controller = new AbortController();
    const { fn, calls } = failing(new OutpostError('TIMEOUT', 'no reply'));
    let delay = 0;
    const running = retry(fn, {
      policy: { minMs: HOUR, maxMs: HOUR, jitter: 0 },
      signal: controller.signal,
      onRetry: (e) => {
        delay = e.delayMs;
        setImmediate(() => controller.abort());
      },
    });
    const started = Date.now();
    await expect(running).rejects.toMatchObject({ name: 'AbortError' });
    expect(delay).toBe(HOUR);
    expect(Date.now() - started).toBeLessThan(delay); // it returned; it did not sit the hour out
    expect(calls.count).toBe(1);
  });

  it('never starts when the signal has already aborted', async () => {
    const controller = new AbortController();
    controller.abort(new OutpostError('DEPLOYMENT_INTERRUPTED', 'agent stopping'));
    const { fn, calls } = failing();
    await expect(retry(fn, { policy: FAST, signal: controller.signal })).rejects.toMatchObject({
      code: 'DEPLOYMENT_INTERRUPTED',
    });
    expect(calls.count).toBe(0);
  });
});
