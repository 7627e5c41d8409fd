import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compile } from '../../../compiler/compile.js';
import { budgetMisses, DEFAULT_BUDGET } from '../../../compiler/evaluate/budget.js';
import { Evaluator } from '../../../compiler/evaluate/evaluator.js';
import { NAN_INPUT, nanModel } from '../../helpers/nan-models.js';
import { tmpDir } from '../../helpers/tmp.js';

const samples = [{ x: { data: NAN_INPUT.data, dims: NAN_INPUT.dims } }];

let evaluator: Evaluator;
beforeAll(() => {
  evaluator = new Evaluator();
});
afterAll(() => evaluator.close());

describe('accuracy grading on models that emit NaN', () => {
  it('grades a copy whose outputs hold the same NaN and −Infinity as identical', async () => {
    const dir = await tmpDir();
    const path = await nanModel(dir, 'log');
    const figures = await evaluator.accuracy(path, await evaluator.reference(path, samples));
    expect(figures).toMatchObject({ cosine: 1, max_abs_err: 0, relative_err: 0 });
    expect(budgetMisses(figures, DEFAULT_BUDGET)).toEqual([]);
  });

  it('fails a variant that answers NaN where the original answers numbers, and says so', async () => {
    const dir = await tmpDir();
    const ref = await evaluator.reference(await nanModel(dir, 'log-abs'), samples);
    const figures = await evaluator.accuracy(await nanModel(dir, 'log'), ref);
    expect(figures.max_abs_err).toBe(Infinity);
    expect(figures.nonfinite_mismatches).toBe(3);
    expect(budgetMisses(figures, DEFAULT_BUDGET).join('; ')).toMatch(/y: 3 values are NaN\/Infinity on one side only/);
  });

  it('compiles an fp32 copy of a model whose outputs hold NaN on random data (ONNX test_log, test_acosh …)', async () => {
    const dir = await tmpDir();
    const report = await compile({
      model: await nanModel(dir, 'sqrt'),
      target: 'host',
      precision: 'fp32',
      output: join(dir, 'artifact'),
    });
    expect(report.variants[0]).toMatchObject({ id: 'fp32', within_budget: true });
    expect(report.variants[0]?.accuracy?.cosine).toBe(1);
  });
});
