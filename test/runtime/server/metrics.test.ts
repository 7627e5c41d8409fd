import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OutpostError } from '../../../runtime/errors.js';
import { batchingScheduler } from '../../../runtime/server/scheduling/batching.js';
import { ServerMetrics } from '../../../runtime/server/metrics/prometheus.js';
import { StaticRepository } from '../../../runtime/server/serving/model-repository.js';
import type { InferenceEvent } from '../../../runtime/server/serving/service.js';
import { suiteTmpDir } from '../../helpers/tmp.js';
import { loadBatchModels, mlpFeeds, type BatchModels } from './batch-models.js';

/** A delay no test waits out: requests stay queued until the test closes the repository. */
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

interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

/** The samples of a Prometheus text exposition (format 0.0.4): `name{label="value",...} number`. */
function parse(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (match === null) continue;
    const labels: Record<string, string> = {};
    for (const [, key, value] of (match[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g))
      labels[key ?? ''] = value ?? '';
    samples.push({ name: match[1] ?? '', labels, value: Number(match[3]) });
  }
  return samples;
}

/** The one sample named `name` whose labels include `labels`. */
function sample(samples: readonly Sample[], name: string, labels: Readonly<Record<string, string>> = {}): number {
  const found = samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  expect(found, `${name} ${JSON.stringify(labels)}`).toHaveLength(1);
  return found[0]?.value ?? NaN;
}

/** A metrics object wired as the server wires it: observers on every service, batch sizes from the batcher. */
function served(options: Parameters<typeof batchingScheduler>[0] = {}) {
  const metrics = new ServerMetrics();
  const repository = new StaticRepository({
    observers: [metrics.observer],
    scheduler: batchingScheduler({ ...options, observer: metrics.batches }),
  });
  metrics.watch(repository);
  return { metrics, repository };
}

const MLP = { model: 'mlp', version: '0' };

describe('ServerMetrics', () => {
  it('exposes calls, errors by code, latency and batch sizes per model version in Prometheus text', async () => {
    const { metrics, repository } = served({ maxBatchSize: 8, maxQueueDelayMs: 1 });
    await repository.add(models.mlp);
    const service = repository.service('mlp');
    if (service === undefined) throw new Error('mlp is not served');
    const rows = [1, 2, 3, 1, 1];
    await Promise.all(rows.map((n, i) => service.infer(mlpFeeds(n, i))));
    const failures = [
      service.infer({ x: { data: new Float32Array(15), dims: [1, 15] } }),
      service.infer({ x: { data: new Float32Array(15), dims: [1, 15] } }),
      service.infer({ x: { data: new Float64Array(16), dims: [1, 16] } }),
    ];
    for (const failure of failures) await expect(failure).rejects.toThrow(OutpostError);

    const text = await metrics.text();
    expect(metrics.contentType).toMatch(/^text\/plain/);
    expect(text).toContain('# TYPE outpost_inference_requests_total counter');
    expect(text).toContain('# TYPE outpost_inference_duration_seconds histogram');
    expect(text).toContain('# TYPE outpost_batch_size histogram');
    expect(text).toContain('# TYPE outpost_queued_requests gauge');
    const samples = parse(text);
    expect(sample(samples, 'outpost_inference_requests_total', MLP)).toBe(8);
    expect(sample(samples, 'outpost_inference_errors_total', { ...MLP, code: 'INPUT_SHAPE_MISMATCH' })).toBe(2);
    expect(sample(samples, 'outpost_inference_errors_total', { ...MLP, code: 'INPUT_DTYPE_MISMATCH' })).toBe(1);
    expect(sample(samples, 'outpost_inference_duration_seconds_count', MLP)).toBe(5);
    const buckets = samples.filter((s) => s.name === 'outpost_inference_duration_seconds_bucket');
    expect(buckets.map((b) => b.labels.le)).toEqual([
      ...['0.0005', '0.001', '0.0025', '0.005', '0.01', '0.025', '0.05', '0.1', '0.25', '0.5', '1', '2'],
      '+Inf',
    ]);
    for (let i = 1; i < buckets.length; i++)
      expect(buckets[i]?.value).toBeGreaterThanOrEqual(buckets[i - 1]?.value ?? 0);
    expect(sample(samples, 'outpost_inference_duration_seconds_bucket', { ...MLP, le: '+Inf' })).toBe(5);
    // Every successful row went through exactly one batch.
    expect(sample(samples, 'outpost_batch_size_sum', MLP)).toBe(8);
    expect(sample(samples, 'outpost_batch_size_count', MLP)).toBeGreaterThanOrEqual(1);
    expect(sample(samples, 'outpost_queued_requests', MLP)).toBe(0);
    expect(sample(samples, 'outpost_running_requests', MLP)).toBe(0);
    expect(sample(samples, 'outpost_model_load_seconds', MLP)).toBeCloseTo(models.mlp.loadMs / 1000, 9);
    expect(sample(samples, 'outpost_process_memory_bytes', { kind: 'rss' })).toBeGreaterThan(0);
    expect(sample(samples, 'outpost_process_memory_bytes', { kind: 'heap_used' })).toBeGreaterThan(0);

    const window = metrics.windowStats('mlp', '0');
    expect(window).toMatchObject({ requests: 8, errors: 0, clientErrors: 3, errorRate: 0 });
    expect(window.p99Ms).toBeGreaterThan(0);
    metrics.reset('mlp', '0');
    expect(metrics.windowStats('mlp', '0')).toMatchObject({ requests: 0, p99Ms: undefined });
    expect(sample(parse(await metrics.text()), 'outpost_inference_requests_total', MLP)).toBe(8); // counters keep counting
    await repository.close();
  });

  it('reads queue depth and running requests at scrape time', async () => {
    const { metrics, repository } = served({ maxBatchSize: 64, maxQueueDelayMs: NEVER_MS });
    await repository.add(models.mlp);
    const service = repository.service('mlp');
    if (service === undefined) throw new Error('mlp is not served');
    // Their rejections (on close) are awaited from the start, so none goes unhandled.
    const waiting = [1, 2, 3].map((seed) =>
      service.infer(mlpFeeds(1, seed)).then(
        () => undefined,
        (error: unknown) => error,
      ),
    );
    const samples = parse(await metrics.text());
    expect(sample(samples, 'outpost_queued_requests', MLP)).toBe(3);
    expect(sample(samples, 'outpost_running_requests', MLP)).toBe(0);
    await repository.close(); // rejects the queued requests
    for (const error of await Promise.all(waiting)) expect(error).toMatchObject({ code: 'MODEL_RELEASED' });
    const after = parse(await metrics.text());
    expect(after.filter((s) => s.name === 'outpost_queued_requests')).toEqual([]); // no longer served
    expect(sample(after, 'outpost_inference_errors_total', { ...MLP, code: 'MODEL_RELEASED' })).toBe(3);
  });

  it('keeps a sliding window of error rate and p99 per version', () => {
    let now = 0;
    const metrics = new ServerMetrics({ now: () => now, window: { windowMs: 60_000, slices: 12 } });
    const event = (ms: number, error?: unknown): InferenceEvent => ({ name: 'm', version: '2', ms, feeds: {}, error });
    for (let i = 0; i < 95; i++) metrics.observer.onInference(event(1));
    for (let i = 0; i < 4; i++) metrics.observer.onInference(event(0.1, new OutpostError('INFERENCE_FAILED', 'boom')));
    metrics.observer.onInference(event(0.1, new OutpostError('INPUT_SHAPE_MISMATCH', 'bad request')));
    let stats = metrics.windowStats('m', '2');
    expect(stats).toMatchObject({ requests: 100, errors: 4, clientErrors: 1, errorRate: 0.04 });
    expect(stats.p99Ms).toBeGreaterThanOrEqual(1);
    expect(stats.p99Ms).toBeLessThan(1.1); // bins are 10% wide: never below the true value, at most 10% above

    now = 30_000; // later in the window: two slow calls push p99 into the slow tail
    metrics.observer.onInference(event(500));
    metrics.observer.onInference(event(500));
    stats = metrics.windowStats('m', '2');
    expect(stats.requests).toBe(102);
    expect(stats.p99Ms).toBeGreaterThanOrEqual(500);
    expect(stats.p99Ms).toBeLessThan(550);

    now = 65_000; // the first slice has left the window; the slow calls have not
    stats = metrics.windowStats('m', '2');
    expect(stats).toMatchObject({ requests: 2, errors: 0, errorRate: 0 });
    expect(stats.p99Ms).toBeGreaterThanOrEqual(500);

    now = 200_000; // everything has left
    expect(metrics.windowStats('m', '2')).toEqual({
      requests: 0,
      errors: 0,
      clientErrors: 0,
      errorRate: 0,
      p99Ms: undefined,
    });
    metrics.observer.onInference(event(2, new OutpostError('OVERLOADED', 'full')));
    expect(metrics.windowStats('m', '2')).toMatchObject({ requests: 1, errors: 1, errorRate: 1 });
    expect(metrics.windowStats('m', 'other')).toMatchObject({ requests: 0 });
  });

  it('keeps its metrics in its own registry, so instances do not collide', async () => {
    const a = new ServerMetrics();
    const b = new ServerMetrics();
    a.observer.onInference({ name: 'm', version: '1', ms: 3, feeds: {} });
    expect(sample(parse(await a.text()), 'outpost_inference_requests_total', { model: 'm' })).toBe(1);
    expect(parse(await b.text()).filter((s) => s.name === 'outpost_inference_requests_total')).toEqual([]);
  });
});
