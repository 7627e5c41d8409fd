import { afterEach, describe, expect, it } from 'vitest';
import { startEmbeddedBroker, type EmbeddedBroker } from '../../fleet/broker.js';
import { CONNECT_RETRY, closeBroker, connectBroker } from '../../fleet/mqtt.js';
import type { RetryEvent } from '../../runtime/retry.js';
import { freePort } from '../helpers/broker.js';

/** The fleet's first connection retries with the one jittered backoff (runtime/retry.ts), a bounded number of times. */
const FAST = Object.freeze({ minMs: 20, maxMs: 80, jitter: 0.3, maxAttempts: 5 }); // ms: keeps the test short

let broker: EmbeddedBroker | undefined;
afterEach(async () => {
  await broker?.close();
  broker = undefined;
});

describe('connectBroker', () => {
  it('waits for a broker that is still starting: the attempt after it came up connects', async () => {
    const port = await freePort();
    const events: RetryEvent[] = [];
    let starting: Promise<EmbeddedBroker> | undefined;
    const client = await connectBroker({
      url: `mqtt://127.0.0.1:${port}`,
      retry: FAST,
      onRetry: (event) => {
        events.push(event);
        // The first refusal (nothing listening yet) starts the broker; the backoff gives it time to listen.
        starting ??= startEmbeddedBroker({ port });
      },
    });
    broker = await starting;
    expect(client.connected).toBe(true);
    expect(events[0]).toMatchObject({ attempt: 1, category: 'wait-for-network' });
    expect(events.length).toBeLessThan(FAST.maxAttempts);
    await closeBroker(client);
  });

  it('gives up after its attempts with BROKER_UNREACHABLE naming the broker and the count', async () => {
    const url = `mqtt://127.0.0.1:${await freePort()}`;
    const events: RetryEvent[] = [];
    const error = await connectBroker({ url, retry: FAST, onRetry: (e) => events.push(e) }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'BROKER_UNREACHABLE', details: { url, attempts: FAST.maxAttempts } });
    expect((error as Error).message).toContain(url);
    expect((error as Error).message).toMatch(/gave up after 5 attempts/);
    expect(events.map((e) => e.attempt)).toEqual([1, 2, 3, 4]);
    expect(CONNECT_RETRY.maxAttempts).toBeGreaterThan(1); // the default retries too
  });
});
