import { describe, expect, it } from 'vitest';
import { createCalibrator, type CalibrationMethod } from '../../../compiler/calibration/calibrators.js';
import { AbsHistogram } from '../../../compiler/calibration/histogram.js';
import { isOutpostError } from '../../../runtime/errors.js';
import { gaussian, uniform } from './helpers.js';

const BATCHES = 10;
const BATCH = 100_000; // values per batch: 1 M in all

/** N(0, 1) in ten batches, with two outliers (100 and −80) in batch 3: 2 values in a million. */
function withOutliers(batch: number): Float32Array {
  const values = gaussian(BATCH, 100 + batch);
  if (batch === 3) {
    values[5] = 100;
    values[7] = -80;
  }
  return values;
}

function calibrate(method: CalibrationMethod, make: (batch: number) => Float32Array, name = 't') {
  const calibrator = createCalibrator(method);
  for (let b = 0; b < BATCHES; b++) calibrator.observe(name, make(b));
  const range = calibrator.ranges().get(name);
  if (range === undefined) throw new Error(`no range for ${name}`);
  return range;
}

describe('calibrators', () => {
  it('minmax keeps the extremes across batches, outliers included', () => {
    expect(calibrate('minmax', withOutliers)).toEqual({ min: -80, max: 100 });
    const calibrator = createCalibrator('minmax');
    calibrator.observe('a', Float32Array.of(1, 2, NaN, Infinity));
    calibrator.observe('a', Float32Array.of(-3, 0.5, -Infinity));
    calibrator.observe('b', Float32Array.of(NaN));
    expect(calibrator.ranges()).toEqual(
      new Map([
        ['a', { min: -3, max: 2 }],
        ['b', { min: 0, max: 0 }],
      ]),
    );
  });

  it('percentile (99.999, symmetric) clips two outliers in a million', () => {
    const r = calibrate('percentile', withOutliers);
    // N(0,1)'s 99.999th percentile of |x| is ~4.4; the bins are 100/2048·2^k wide after the outliers arrive.
    expect(r.max).toBeGreaterThan(3.5);
    expect(r.max).toBeLessThan(6);
    expect(r.min).toBe(-r.max);
  });

  it('percentile on a uniform distribution stays at its edge, and never past the values seen', () => {
    const r = calibrate('percentile', (b) => uniform(BATCH, b + 1, 2));
    expect(r.max).toBeGreaterThan(1.99);
    expect(r.max).toBeLessThanOrEqual(2);
    const relu = calibrate('percentile', (b) => uniform(BATCH, b + 1, 2).map((v) => Math.max(0, v)));
    expect(relu.min).toBe(0);
  });

  it('entropy clips the outliers minmax keeps', () => {
    const r = calibrate('entropy', withOutliers);
    expect(r.max).toBeLessThan(20);
    expect(r.max).toBeGreaterThan(3);
    expect(r.min).toBe(-r.max);
  });

  it('entropy keeps most of a clean Gaussian and of a ReLU output (its zeros do not pull the threshold down)', () => {
    const r = calibrate('entropy', (b) => gaussian(BATCH, 200 + b));
    expect(r.max).toBeGreaterThan(3);
    const relu = calibrate('entropy', (b) => gaussian(BATCH, 300 + b).map((v) => Math.max(0, v)));
    expect(relu.min).toBe(0);
    expect(relu.max).toBeGreaterThan(2.5);
  });

  it('keeps a narrow band of values away from zero (a PP-OCRv4 rec activation once gave min > max)', () => {
    for (const method of ['percentile', 'entropy'] as const) {
      for (const sign of [1, -1]) {
        // Uniform on ±[0.24, 0.26]: the |x| histogram is empty below 0.24.
        const r = calibrate(method, (b) => uniform(BATCH, 400 + b, 0.01).map((v) => sign * (0.25 + v)));
        const [near, far] = sign > 0 ? [r.min, r.max] : [-r.max, -r.min];
        expect(near, `${method} ${sign}`).toBeCloseTo(0.24, 3);
        expect(far, `${method} ${sign}`).toBeGreaterThan(0.259);
      }
    }
  });

  it('refuses unknown methods and percentiles outside (0, 100]', () => {
    for (const make of [
      () => createCalibrator('median' as CalibrationMethod),
      () => createCalibrator('percentile', { percentile: 0 }),
      () => createCalibrator('percentile', { percentile: 101 }),
      () => new AbsHistogram(3),
    ]) {
      let caught: unknown;
      try {
        make();
      } catch (error) {
        caught = error;
      }
      expect(isOutpostError(caught, 'INVALID_ARGUMENT')).toBe(true);
    }
  });
});

describe('the |x| histogram', () => {
  it('keeps a fixed number of bins however the range grows, merging exactly', () => {
    const h = new AbsHistogram(8);
    h.add(Float32Array.of(0, 0, 0.5, 1)); // zeros first, then width = 1/8
    expect(h.width).toBe(1 / 8);
    h.add(Float32Array.of(3, -7.9)); // past the top edge (1): width doubles to 1
    expect(h.width).toBe(1);
    expect(h.counts.length).toBe(8);
    expect(h.total).toBe(6);
    // 0, 0, 0.5 and 1 (the top edge lands in the last bin, [7/8, 1), which merges into [0, 1)).
    expect(h.counts[0]).toBe(4);
    expect(h.counts[3]).toBe(1);
    expect(h.counts[7]).toBe(1);
    expect([h.min, h.max]).toEqual([Math.fround(-7.9), 3]);
    h.add(Float32Array.of(NaN, Infinity));
    expect(h.skipped).toBe(2);
  });

  it('counts every value of a million without growing', () => {
    const h = new AbsHistogram();
    for (let b = 0; b < BATCHES; b++) h.add(withOutliers(b));
    expect(h.total).toBe(BATCHES * BATCH);
    expect(h.counts.length).toBe(2048);
  });
});
