import { runInNewContext } from 'node:vm';
import v8 from 'node:v8';
import { describe, expect, it } from 'vitest';
import {
  DriftMonitor,
  computeBaseline,
  kolmogorovSmirnov,
  populationStabilityIndex,
  type DriftEvent,
  type SampleTensor,
} from '../../../runtime/monitor/index.js';
import type { InferenceEvent } from '../../../runtime/server/index.js';
import type { TensorValue } from '../../../runtime/backends/index.js';
import { seededRandom } from '../../../runtime/tensor/index.js';

v8.setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/** Standard normal draws (Box–Muller) from a seeded source, so every run sees the same numbers. */
function normals(random: () => number, n: number, mean = 0, std = 1): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const u = Math.max(1e-12, random());
    out[i] = mean + std * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * random());
  }
  return out;
}

const vector = (data: Float32Array): SampleTensor => ({ type: 'float32', dims: [1, data.length], data });
/** A stand-in classifier: logits whose argmax is the index of the largest of the first 4 inputs. */
function logits(x: Float32Array): TensorValue {
  const out = new Float32Array(4);
  for (let i = 0; i < 4; i++) out[i] = x[i] ?? 0;
  return { type: 'float32', dims: [1, 4], data: out };
}
const call = (x: Float32Array): InferenceEvent => ({
  name: 'mlp',
  version: '1',
  ms: 1,
  feeds: { x: vector(x) },
  outputs: { logits: logits(x) },
});

function baselineOf(random: () => number, samples = 400) {
  const inputs = Array.from({ length: samples }, () => ({ x: vector(normals(random, 8)) }));
  return computeBaseline(
    inputs,
    inputs.map((s) => ({ logits: logits(s.x.data as Float32Array) })),
    { source: 'test' },
  );
}

describe('drift statistics', () => {
  it('PSI and KS are zero for identical distributions and grow with the shift', () => {
    const base = [10, 20, 30, 40];
    expect(populationStabilityIndex(base, base)).toBeCloseTo(0, 12);
    expect(kolmogorovSmirnov(base, [1, 2, 3, 4])).toBeCloseTo(0, 12);
    expect(populationStabilityIndex(base, [40, 30, 20, 10])).toBeGreaterThan(
      populationStabilityIndex(base, [20, 20, 30, 30]),
    );
    expect(kolmogorovSmirnov(base, [0, 0, 0, 100])).toBeCloseTo(0.6, 12);
  });

  it('summarises each element of a small vector, and the class distribution of a classifier output', () => {
    const b = baselineOf(seededRandom(1));
    expect(b.inputs.map((f) => f.feature)).toEqual(Array.from({ length: 8 }, (_, i) => `x[${i}]`));
    const x0 = b.inputs[0];
    expect(x0?.mean).toBeCloseTo(0, 0);
    expect(x0?.std).toBeGreaterThan(0.8);
    expect(x0?.histogram.counts.reduce((a, c) => a + c, 0)).toBe(400);
    expect(b.classes).toHaveLength(1);
    expect(b.classes[0]?.counts.reduce((a, c) => a + c, 0)).toBe(400);
  });

  it('summarises an image per channel', () => {
    const random = seededRandom(2);
    const image = (): SampleTensor => ({ type: 'float32', dims: [1, 3, 16, 16], data: normals(random, 3 * 256) });
    const b = computeBaseline([{ image: image() }, { image: image() }], [{}, {}], { source: 'test', layout: 'NCHW' });
    expect(b.inputs.map((f) => f.feature)).toEqual(['image[c0]', 'image[c1]', 'image[c2]']);
    expect(b.inputs[0]?.count).toBe(2 * 256);
  });
});

describe('DriftMonitor', () => {
  const thresholds = { psi: 0.25, ks: 0.2 };

  it('stays quiet on inputs drawn like the baseline and alarms on a shifted mean, then clears', () => {
    const random = seededRandom(3);
    const events: DriftEvent[] = [];
    const monitor = new DriftMonitor({ window: 400, thresholds, onDrift: (e) => events.push(e) });
    monitor.watch('mlp', '1', baselineOf(random));
    for (let i = 0; i < 800; i++) monitor.observer.onInference(call(normals(random, 8)));
    const calm = monitor.reports()[0];
    expect(calm?.drifting).toBe(false);
    expect(Math.max(...(calm?.scores ?? []).map((s) => s.value / s.threshold))).toBeLessThan(1);
    expect(events).toEqual([]);

    for (let i = 0; i < 400; i++) monitor.observer.onInference(call(normals(random, 8, 1.5)));
    const shifted = monitor.reports()[0];
    expect(shifted?.drifting).toBe(true);
    expect(events.map((e) => e.type)).toEqual(['drift']);
    const features = new Set(events[0]?.scores.map((s) => s.feature));
    expect(features.has('x[0]')).toBe(true);

    for (let i = 0; i < 800; i++) monitor.observer.onInference(call(normals(random, 8)));
    expect(monitor.reports()[0]?.drifting).toBe(false);
    expect(events.map((e) => e.type)).toEqual(['drift', 'drift-cleared']);
  });

  it('alarms on brightened images (per channel)', () => {
    const random = seededRandom(4);
    const image = (brightness: number): SampleTensor => {
      const data = new Float32Array(3 * 32 * 32);
      for (let i = 0; i < data.length; i++) data[i] = Math.min(1, random() * 0.8 + brightness);
      return { type: 'float32', dims: [1, 3, 32, 32], data };
    };
    const baseline = computeBaseline(
      Array.from({ length: 50 }, () => ({ image: image(0) })),
      Array.from({ length: 50 }, () => ({})),
      { source: 'test', layout: 'NCHW' },
    );
    const monitor = new DriftMonitor({ window: 100, thresholds });
    monitor.watch('cnn', '1', baseline, 'NCHW');
    const event = (brightness: number): InferenceEvent => ({
      name: 'cnn',
      version: '1',
      ms: 1,
      feeds: { image: image(brightness) },
      outputs: {},
    });
    for (let i = 0; i < 100; i++) monitor.observer.onInference(event(0));
    expect(monitor.reports()[0]?.drifting).toBe(false);
    for (let i = 0; i < 100; i++) monitor.observer.onInference(event(0.3));
    const report = monitor.reports()[0];
    expect(report?.drifting).toBe(true);
    expect(report?.scores.filter((s) => s.value > s.threshold).map((s) => s.feature)).toContain('image[c0]');
  });

  it('samples like capture and ignores versions it does not watch and failed calls', () => {
    const random = seededRandom(5);
    const monitor = new DriftMonitor({ window: 1000, samplePercent: 10, thresholds, random });
    monitor.watch('mlp', '1', baselineOf(random));
    for (let i = 0; i < 1000; i++) monitor.observer.onInference(call(normals(random, 8)));
    monitor.observer.onInference({ ...call(normals(random, 8)), version: '2' });
    monitor.observer.onInference({ name: 'mlp', version: '1', ms: 1, feeds: {}, error: new Error('x') });
    const samples = monitor.reports()[0]?.samples ?? 0;
    expect(samples).toBeGreaterThan(50);
    expect(samples).toBeLessThan(160);
  });

  it('keeps its memory constant over 100,000 calls', () => {
    const random = seededRandom(6);
    const monitor = new DriftMonitor({ window: 1000, thresholds });
    monitor.watch('mlp', '1', baselineOf(random));
    const inputs = Array.from({ length: 64 }, () => normals(random, 8));
    const events = inputs.map(call);
    for (let i = 0; i < 1000; i++) monitor.observer.onInference(events[i % 64] as InferenceEvent);
    const before = monitor.footprint();
    gc();
    const heapBefore = process.memoryUsage().heapUsed;
    for (let i = 0; i < 100_000; i++) monitor.observer.onInference(events[i % 64] as InferenceEvent);
    gc();
    const retained = process.memoryUsage().heapUsed - heapBefore;
    expect(monitor.footprint()).toEqual(before);
    // 100,000 calls retaining even 40 bytes each would hold 4 MB; the window's counters were allocated up front.
    expect(retained).toBeLessThan(4 * 1024 * 1024);
    expect(monitor.reports()[0]?.samples).toBeLessThanOrEqual(1000);
  });
});
