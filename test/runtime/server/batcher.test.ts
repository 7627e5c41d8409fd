import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OutpostError } from '../../../runtime/errors.js';
import type { Feeds, Outputs } from '../../../runtime/model/model.js';
import { splitRows } from '../../../runtime/server/scheduling/rows.js';
import {
  batchingScheduler,
  batchProblem,
  BatchingScheduler,
  type BatchEvent,
  type BatchingOptions,
} from '../../../runtime/server/scheduling/batching.js';
import { errorResponse } from '../../../runtime/server/http/status.js';
import { DirectScheduler, RETRY_AFTER_SECONDS, type Scheduler } from '../../../runtime/server/scheduling/direct.js';
import type { TensorLike } from '../../../runtime/tensor/tensor.js';
import { suiteTmpDir } from '../../helpers/tmp.js';
import { loadBatchModels, mlpFeeds, type BatchModels } from './batch-models.js';

/**
 * A delay no test waits out: batches in these tests run because they filled up, or because the scheduler closed.
 * Requests submitted in one synchronous stretch all reach the forming batch before any timer could fire.
 */
const NEVER_MS = 60_000;

let models: BatchModels;
let dispose: () => Promise<void>;

beforeAll(async () => {
  const tmp = await suiteTmpDir();
  dispose = tmp.dispose;
  models = await loadBatchModels(tmp.dir);
});
afterAll(async () => {
  await models.release();
  await dispose();
});

/** A batching scheduler on `model` that records every batch it runs. */
function batching(model = models.mlp, options: Partial<BatchingOptions> = {}) {
  const batches: BatchEvent[] = [];
  const scheduler = batchingScheduler({ ...options, observer: { onBatch: (event) => batches.push(event) } })(model);
  return { scheduler, batches };
}

const data = (outputs: Outputs, name: string) => (outputs[name]?.data ?? new Float32Array(0)) as Float32Array;

describe('BatchingScheduler', () => {
  it('answers many concurrent requests of mixed batch sizes exactly as unbatched runs, row for row', async () => {
    const { scheduler, batches } = batching(models.mlp, { maxBatchSize: 16, maxQueueDelayMs: 2, maxQueue: 4096 });
    expect(scheduler).toBeInstanceOf(BatchingScheduler);
    const sizes = [1, 2, 3, 1, 5, 1, 20]; // 20 rows is more than a batch holds: it runs alone
    const requests = Array.from({ length: 210 }, (_, i) => mlpFeeds(sizes[i % sizes.length] ?? 1, i + 1));
    const results = await Promise.all(requests.map((feeds) => scheduler.run(feeds)));

    for (const [i, feeds] of requests.entries()) {
      const x = feeds.x as TensorLike;
      const rows = x.dims[0] ?? 0;
      const logits = results[i]?.logits;
      expect(logits?.dims).toEqual([rows, 10]);
      for (let row = 0; row < rows; row++) {
        const alone = await models.mlp.infer({ x: { data: x.data.slice(row * 16, row * 16 + 16), dims: [1, 16] } });
        expect(data(results[i] ?? {}, 'logits').subarray(row * 10, row * 10 + 10)).toEqual(data(alone, 'logits'));
      }
    }
    expect(batches.reduce((n, b) => n + b.requests, 0)).toBe(requests.length);
    expect(batches.reduce((n, b) => n + b.rows, 0)).toBe(requests.reduce((n, f) => n + (f.x?.dims[0] ?? 0), 0));
    expect(batches.some((b) => b.requests > 1 && b.rows > 1)).toBe(true); // batches formed under load
    for (const b of batches) if (b.requests > 1) expect(b.rows).toBeLessThanOrEqual(16);
    expect(batches.filter((b) => b.rows === 20)).toEqual(
      Array.from({ length: 30 }, () => ({ name: 'mlp', version: '0', rows: 20, requests: 1 })),
    );
    await scheduler.close();
  });

  it('returns each request its rows as views of one batch output, not copies', async () => {
    const { scheduler, batches } = batching(models.mlp, { maxBatchSize: 4, maxQueueDelayMs: NEVER_MS });
    const [a, b] = await Promise.all([scheduler.run(mlpFeeds(1, 1)), scheduler.run(mlpFeeds(3, 2))]);
    expect(batches).toEqual([{ name: 'mlp', version: '0', rows: 4, requests: 2 }]);
    expect(data(a, 'logits').buffer).toBe(data(b, 'logits').buffer);
    expect(a.logits?.dims).toEqual([1, 10]);
    expect(b.logits?.dims).toEqual([3, 10]);
  });

  it('runs a lone request once maxQueueDelayMs has passed, as a batch of one row', async () => {
    const { scheduler, batches } = batching(models.mlp, { maxBatchSize: 8, maxQueueDelayMs: 2 });
    const feeds = mlpFeeds(1, 7);
    const outputs = await scheduler.run(feeds);
    expect(batches).toEqual([{ name: 'mlp', version: '0', rows: 1, requests: 1 }]);
    expect(data(outputs, 'logits')).toEqual(data(await models.mlp.infer(feeds), 'logits'));
  });

  it('without a delay, runs a lone request at once and batches what arrives while the model is busy', async () => {
    const { scheduler, batches } = batching(models.mlp, { maxBatchSize: 16, maxQueueDelayMs: 0, concurrency: 1 });
    await scheduler.run(mlpFeeds(1, 1));
    expect(batches).toEqual([{ name: 'mlp', version: '0', rows: 1, requests: 1 }]);
    // Submitted in one synchronous stretch: the first finds the model idle and runs; the other nine wait for it.
    const requests = Array.from({ length: 10 }, (_, i) => mlpFeeds(1, i + 2));
    const results = await Promise.all(requests.map((feeds) => scheduler.run(feeds)));
    expect(batches.slice(1)).toEqual([
      { name: 'mlp', version: '0', rows: 1, requests: 1 },
      { name: 'mlp', version: '0', rows: 9, requests: 9 },
    ]);
    for (const [i, feeds] of requests.entries())
      expect(data(results[i] ?? {}, 'logits')).toEqual(data(await models.mlp.infer(feeds), 'logits'));
    await scheduler.close();
  });

  it('drops a queued request whose caller went away, without running it, and runs the rest', async () => {
    const { scheduler, batches } = batching(models.mlp, { maxBatchSize: 16, maxQueueDelayMs: 0, concurrency: 1 });
    const first = scheduler.run(mlpFeeds(1, 1)); // finds the model idle and runs
    const leaving = new AbortController();
    const abandoned = scheduler.run(mlpFeeds(2, 2), leaving.signal); // waits behind it, with the next one
    const next = scheduler.run(mlpFeeds(1, 3));
    leaving.abort();
    await expect(abandoned).rejects.toMatchObject({ code: 'REQUEST_CANCELLED' });
    await Promise.all([first, next]);
    expect(batches.map((b) => [b.rows, b.requests])).toEqual([
      [1, 1],
      [1, 1], // the abandoned request's two rows never ran
    ]);
    expect(scheduler.queued).toBe(0);
    await expect(scheduler.run(mlpFeeds(1, 4), AbortSignal.abort())).rejects.toMatchObject({
      code: 'REQUEST_CANCELLED',
    });
    await scheduler.close();
  });

  it('rejects a malformed request alone while the others in the same window succeed', async () => {
    const { scheduler, batches } = batching(models.mlp, { maxBatchSize: 4, maxQueueDelayMs: NEVER_MS });
    const good = [scheduler.run(mlpFeeds(1, 1)), scheduler.run(mlpFeeds(1, 2))];
    const wrongShape = scheduler.run({ x: { data: new Float32Array(15), dims: [1, 15] } });
    const wrongType = scheduler.run({ x: { data: new Float64Array(16), dims: [1, 16] } });
    good.push(scheduler.run(mlpFeeds(2, 3)));
    await expect(wrongShape).rejects.toMatchObject({ code: 'INPUT_SHAPE_MISMATCH' });
    await expect(wrongType).rejects.toMatchObject({ code: 'INPUT_DTYPE_MISMATCH' });
    const outputs = await Promise.all(good);
    expect(outputs.map((o) => o.logits?.dims)).toEqual([
      [1, 10],
      [1, 10],
      [2, 10],
    ]);
    expect(batches).toEqual([{ name: 'mlp', version: '0', rows: 4, requests: 3 }]);
  });

  it('never puts requests whose non-batch dimensions differ in one batch', async () => {
    const { scheduler, batches } = batching(models.doubler, { maxBatchSize: 4, maxQueueDelayMs: NEVER_MS });
    const feeds = (len: number, seed: number): Feeds => ({
      x: { data: Float32Array.from({ length: len }, (_, i) => seed + i / 8), dims: [1, len] },
    });
    const requests = Array.from({ length: 8 }, (_, i) => feeds(i % 2 === 0 ? 3 : 5, i));
    const results = await Promise.all(requests.map((f) => scheduler.run(f)));
    for (const [i, f] of requests.entries()) {
      const x = f.x?.data as Float32Array;
      const y = results[i]?.[models.doubler.outputs[0]?.name ?? ''];
      expect(y?.dims).toEqual(f.x?.dims);
      expect(y?.data).toEqual(x.map((v) => v * 2));
    }
    expect(batches).toEqual([
      { name: 'doubler', version: '0', rows: 4, requests: 4 },
      { name: 'doubler', version: '0', rows: 4, requests: 4 },
    ]);
  });

  it('refuses with OVERLOADED (503, Retry-After) once the queued rows would pass maxQueue', async () => {
    const { scheduler, batches } = batching(models.mlp, {
      maxBatchSize: 2,
      maxQueueDelayMs: NEVER_MS,
      concurrency: 1,
      maxQueue: 4,
    });
    const admitted = Array.from({ length: 6 }, (_, i) => scheduler.run(mlpFeeds(1, i)));
    // The first two rows run at once; four wait in two full batches behind the single slot.
    expect(scheduler.running).toBe(2);
    expect(scheduler.queued).toBe(4);
    if (!(scheduler instanceof BatchingScheduler)) throw new Error('mlp should be batched');
    expect(scheduler.queuedRows).toBe(4);
    const refused = scheduler.run(mlpFeeds(1, 99));
    await expect(refused).rejects.toMatchObject({
      code: 'OVERLOADED',
      retryable: true,
      details: { queuedRows: 4, maxQueueRows: 4, retryAfterSeconds: RETRY_AFTER_SECONDS },
    });
    expect(errorResponse(await refused.catch((e: unknown) => e))).toMatchObject({
      status: 503,
      headers: { 'retry-after': String(RETRY_AFTER_SECONDS) },
    });
    await Promise.all(admitted);
    expect(batches.map((b) => b.rows)).toEqual([2, 2, 2]);
    expect([scheduler.running, scheduler.queued]).toEqual([0, 0]);
  });

  it('rejects every request of a batch whose run fails, with that error', async () => {
    const model = await models.loadMlp();
    const { scheduler } = batching(model, { maxBatchSize: 3, maxQueueDelayMs: NEVER_MS });
    await model.release(); // feeds still validate; the run itself fails
    const runs = [1, 2, 3].map((seed) => scheduler.run(mlpFeeds(1, seed)));
    for (const run of runs) await expect(run).rejects.toMatchObject({ code: 'MODEL_RELEASED' });
    expect(new Set(await Promise.all(runs.map((run) => run.catch((e: unknown) => e)))).size).toBe(1);
  });

  it('closes by finishing running batches and rejecting queued requests with MODEL_RELEASED', async () => {
    const { scheduler } = batching(models.mlp, { maxBatchSize: 2, maxQueueDelayMs: NEVER_MS, concurrency: 1 });
    const running = [scheduler.run(mlpFeeds(1, 1)), scheduler.run(mlpFeeds(1, 2))];
    // One full batch due and one forming; their rejections are awaited from the start, so none goes unhandled.
    const queued = [3, 4, 5].map((seed) =>
      expect(scheduler.run(mlpFeeds(1, seed))).rejects.toMatchObject({ code: 'MODEL_RELEASED', retryable: true }),
    );
    let finished = 0;
    for (const p of running) void p.then(() => finished++);
    await scheduler.close();
    expect(finished).toBe(2); // close() resolved only after the running batch answered
    await Promise.all(queued);
    await expect(scheduler.run(mlpFeeds(1, 6))).rejects.toMatchObject({ code: 'MODEL_RELEASED' });
    expect([scheduler.running, scheduler.queued]).toEqual([0, 0]);
    await scheduler.close(); // idempotent
  });

  it('falls back to direct scheduling for models without a batch axis', async () => {
    expect(batchProblem(models.mlp)).toBeUndefined();
    expect(batchProblem(models.fixed)).toMatch(/input "x" \[1, 16\] has a fixed first dimension/);
    expect(batchProblem(models.timeAxis)).toMatch(/"T" is not a batch symbol/);
    const fallback: Scheduler = batchingScheduler()(models.fixed);
    expect(fallback).toBeInstanceOf(DirectScheduler);
    const outputs = await fallback.run({ x: { data: new Float32Array(16).fill(1), dims: [1, 16] } });
    expect(Object.values(outputs)[0]?.dims).toEqual([1, 4]);
    expect(batchingScheduler()(models.timeAxis)).toBeInstanceOf(DirectScheduler);
    expect(batchingScheduler({ batchSymbols: ['T'] })(models.timeAxis)).toBeInstanceOf(BatchingScheduler);
    expect(() => new BatchingScheduler(models.fixed)).toThrow(/cannot be batched/);
  });

  it('refuses options that cannot work', () => {
    for (const options of [{ maxBatchSize: 0 }, { concurrency: 1.5 }, { maxQueue: -1 }, { maxQueueDelayMs: NaN }]) {
      expect(() => batchingScheduler(options)).toThrow(OutpostError);
    }
  });
});

describe('splitRows', () => {
  it('fails the batch instead of mis-splitting an output that does not hold one entry per row', () => {
    const outputs = { y: { type: 'float32' as const, dims: [3, 2], data: new Float32Array(6) } };
    const requests = [
      { feeds: {}, rows: 2 },
      { feeds: {}, rows: 2 },
    ];
    expect(() => splitRows(outputs, requests, 4)).toThrow(/not 4 rows along axis 0/);
  });
});
