import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GraphBuilder, saveModel } from '../../../compiler/onnx/index.js';
import { buildMlp, OPSET } from '../../../models/samples.js';
import { writeArtifact } from '../../../runtime/artifact/index.js';
import { readTuneChoices, writeTuneChoice } from '../../../runtime/tuning/choice.js';
import {
  pickBest,
  requireBest,
  tune,
  type TuneMeasured,
  type TuneOptions,
  type TuneReport,
  type TuneRow,
} from '../../../runtime/tuning/tune.js';
import { isOutpostError } from '../../../runtime/errors.js';
import { fp32Variant, manifestDraft } from '../../helpers/manifest-draft.js';
import { suiteTmpDir } from '../../helpers/tmp.js';

/** Few calls: these tests check the sweep's shape and rules, not the numbers. */
const FAST: Pick<TuneOptions, 'warmup' | 'iterations' | 'concurrency'> = { warmup: 1, iterations: 5, concurrency: 1 };

let dir: string;
let dispose: () => Promise<void>;
let mlp: string; // artifact: x [batch, 16], variants fp32 (native, wasm) and native-only (native)
let fixed: string; // plain model: x [1, 16] → MatMul → [1, 4], no batch axis
let timeAxis: string; // plain model: x [T, 4] → Relu: a symbolic first axis that is not a batch
let ragged: string; // plain model: x [batch, len]: `len` has no default, so nothing can be measured

beforeAll(async () => {
  ({ dir, dispose } = await suiteTmpDir());
  const model = join(dir, 'mlp.onnx');
  await saveModel(buildMlp().proto, model);
  const manifest = manifestDraft({
    name: 'mlp',
    version: '1.2.3',
    inputs: [{ name: 'x', dtype: 'float32', shape: ['batch', 16] }],
    outputs: [{ name: 'logits', dtype: 'float32', shape: ['batch', 10] }],
    variants: [
      fp32Variant('variants/fp32.onnx'),
      fp32Variant('variants/native-only.onnx', { id: 'native-only', backends: ['native'], rank: 2 }),
    ],
  });
  mlp = join(dir, 'mlp-artifact');
  await writeArtifact(mlp, {
    manifest,
    files: [
      { path: 'variants/fp32.onnx', from: model },
      { path: 'variants/native-only.onnx', from: model },
    ],
  });

  const f = new GraphBuilder('fixed');
  const w = f.initializer(
    'w',
    Float32Array.from({ length: 64 }, (_, i) => i / 64),
    [16, 4],
  );
  f.output(f.node('MatMul', [f.input('x', 'float32', [1, 16]), w]), 'float32', [1, 4]);
  fixed = join(dir, 'fixed.onnx');
  await saveModel(f.build({ opsets: { '': OPSET } }), fixed);

  const t = new GraphBuilder('time');
  t.output(t.node('Relu', [t.input('x', 'float32', ['T', 4])]), 'float32', ['T', 4]);
  timeAxis = join(dir, 'time.onnx');
  await saveModel(t.build({ opsets: { '': OPSET } }), timeAxis);

  const r = new GraphBuilder('ragged');
  const two = r.initializer('two', Float32Array.of(2), []);
  r.output(r.node('Mul', [r.input('x', 'float32', ['batch', 'len']), two]), 'float32', ['batch', 'len']);
  ragged = join(dir, 'ragged.onnx');
  await saveModel(r.build({ opsets: { '': OPSET } }), ragged);
});
afterAll(() => dispose());

const key = (r: TuneRow) => `${r.variant}/${r.backend}/${r.threads}/${String(r.batch)}`;

describe('tune on real models', () => {
  let report: TuneReport;

  beforeAll(async () => {
    report = await tune(mlp, { ...FAST, backends: ['native', 'wasm'], threads: [1, 2], batchSizes: [1, 4, 4] });
  });

  it('has one row per variant × listed backend × threads × batch size, in sweep order', () => {
    expect(report).toMatchObject({ model: 'mlp', version: '1.2.3', batchDimension: 'batch' });
    expect(report.results.map(key)).toEqual([
      'fp32/native/1/1',
      'fp32/native/1/4',
      'fp32/native/2/1',
      'fp32/native/2/4',
      'fp32/wasm/1/1',
      'fp32/wasm/1/4',
      'fp32/wasm/2/1',
      'fp32/wasm/2/4',
      // native-only lists no wasm: no wasm rows for it
      'native-only/native/1/1',
      'native-only/native/1/4',
      'native-only/native/2/1',
      'native-only/native/2/4',
    ]);
  });

  it('measures every row it can; WASM at a second thread count is skipped in-process and says why', () => {
    for (const row of report.results) {
      if (row.backend === 'wasm' && row.threads === 2) {
        expect(row.measured).toBeUndefined();
        expect(row.skipped).toMatch(/thread pool once per process/);
        continue;
      }
      expect(row.failed, key(row)).toBeUndefined();
      const m = row.measured as TuneMeasured;
      expect(m.p50_ms).toBeGreaterThan(0);
      expect(m.p50_ms).toBeLessThanOrEqual(m.p90_ms);
      expect(m.p90_ms).toBeLessThanOrEqual(m.p99_ms);
      expect(m.load_ms).toBeGreaterThan(0);
      // Items per second are calls per second × items per call.
      expect(m.throughput_per_s).toBeCloseTo(m.calls_per_s * (row.batch ?? 1), 6);
    }
  });

  it('picks by the stated rule and describes the batching the server should do', () => {
    const best = requireBest(report);
    const picked = pickBest(report.results);
    expect(picked?.criterion).toBe('lowest p50');
    expect(best).toMatchObject({
      model: 'mlp',
      version: '1.2.3',
      variant: picked?.row.variant,
      backend: picked?.row.backend,
      threads: picked?.row.threads,
      criterion: 'lowest p50',
      measured: picked?.row.measured,
    });
    const lowest = Math.min(...report.results.flatMap((r) => (r.measured === undefined ? [] : [r.measured.p50_ms])));
    expect(best.measured.p50_ms).toBe(lowest);
    if (picked?.row.batch === 4) expect(best.batch).toMatchObject({ maxBatchSize: 4 });
    else expect(best.batch).toBeNull();
  });

  it('runs each WASM thread count through isolateWasm (a stand-in for the child process) and only when asked', async () => {
    const asked: number[] = [];
    const isolateWasm = (threads: number): Promise<readonly TuneRow[]> => {
      asked.push(threads);
      return Promise.resolve([{ variant: 'fp32', backend: 'wasm', threads, batch: null, failed: 'stand-in' }]);
    };
    const options = { ...FAST, threads: [1, 2], batchSizes: [1], isolateWasm };
    const withWasm = await tune(fixed, { ...options, backends: ['native', 'wasm'] });
    expect(asked).toEqual([1, 2]);
    expect(withWasm.results.filter((r) => r.backend === 'wasm').map((r) => r.failed)).toEqual(['stand-in', 'stand-in']);
    asked.length = 0;
    const nativeOnly = await tune(fixed, { ...options, backends: ['native'] });
    expect(asked).toEqual([]); // no child processes when no WASM row is wanted
    expect(nativeOnly.results.every((r) => r.backend === 'native')).toBe(true);
  });

  it('sweeps no batch sizes for a model without a batch axis, nor along a time axis', async () => {
    for (const path of [fixed, timeAxis]) {
      const shapes = path === timeAxis ? { x: [50, 4] } : undefined; // T has no default: bind it
      const r = await tune(path, { ...FAST, backends: ['native'], threads: [1], batchSizes: [1, 8], shapes });
      expect(r.batchDimension).toBeNull();
      expect(r.results.map(key)).toEqual([`${r.results[0]?.variant ?? ''}/native/1/null`]);
      expect(r.results[0]?.measured).toBeDefined();
      expect(requireBest(r).batch).toBeNull();
    }
  });

  it('requireBest fails with a typed error naming why when nothing could be measured', async () => {
    const r = await tune(ragged, { ...FAST, backends: ['native'], threads: [1], batchSizes: [2] });
    expect(r.best).toBeUndefined();
    expect(r.results).toHaveLength(1);
    expect(r.results[0]?.failed).toMatch(/"len"/);
    expect(() => requireBest(r)).toThrow(/no configuration of ragged could be measured: .*"len"/);
    try {
      requireBest(r);
    } catch (error) {
      expect(isOutpostError(error, 'INFERENCE_FAILED')).toBe(true);
    }
  });

  it('writes a tuning file readTuneChoices accepts, keeping other models’ choices', async () => {
    const out = join(dir, 'tuning.json');
    const best = requireBest(report);
    await writeTuneChoice(out, best);
    expect([...(await readTuneChoices(out)).entries()]).toEqual([['mlp', best]]);
    expect(JSON.parse(await readFile(out, 'utf8'))).toEqual(best); // one model: a single object
    const other = requireBest(await tune(fixed, { ...FAST, backends: ['native'], threads: [1], batchSizes: [1] }));
    await writeTuneChoice(out, other);
    await writeTuneChoice(out, best); // the same model again replaces its entry
    const choices = await readTuneChoices(out);
    expect([...choices.keys()]).toEqual(['mlp', 'fixed']);
    expect(choices.get('fixed')).toEqual(other);

    await writeFile(join(dir, 'notes.json'), '{"not": "a tuning file"}');
    await expect(writeTuneChoice(join(dir, 'notes.json'), best)).rejects.toSatisfy((e) =>
      isOutpostError(e, 'INVALID_ARGUMENT'),
    );
    expect(await readFile(join(dir, 'notes.json'), 'utf8')).toBe('{"not": "a tuning file"}');
  });
});

describe('pickBest', () => {
  const measured = (p50: number, p99: number, throughput: number): TuneMeasured => ({
    p50_ms: p50,
    p90_ms: p99,
    p99_ms: p99,
    mean_ms: p50,
    throughput_per_s: throughput,
    calls_per_s: throughput,
    load_ms: 1,
  });
  const row = (variant: string, m?: TuneMeasured, extra: Partial<TuneRow> = {}): TuneRow => ({
    variant,
    backend: 'native',
    threads: 1,
    batch: 1,
    ...(m === undefined ? { failed: 'broke' } : { measured: m }),
    ...extra,
  });
  const rows = [
    row('fast', measured(1, 9, 900)),
    row('steady', measured(2, 3, 500)),
    row('wide', measured(4, 6, 2000), { batch: 8 }),
    row('broken'),
    row('skipped', undefined, { failed: undefined, skipped: 'by design' }),
  ];

  it('without a bound: the lowest p50', () => {
    expect(pickBest(rows)).toEqual({ row: rows[0], criterion: 'lowest p50' });
  });

  it('with a bound: the highest throughput among rows whose p99 meets it', () => {
    expect(pickBest(rows, 6)).toEqual({ row: rows[2], criterion: 'highest throughput with p99 ≤ 6 ms' });
    expect(pickBest(rows, 5)?.row.variant).toBe('steady');
    expect(pickBest(rows, 9)?.row.variant).toBe('wide');
  });

  it('with a bound nobody meets: the lowest p50, and the criterion says so', () => {
    expect(pickBest(rows, 1)).toEqual({
      row: rows[0],
      criterion: 'lowest p50 (no configuration had p99 ≤ 1 ms)',
    });
  });

  it('nothing measured: no choice', () => {
    expect(pickBest([rows[3] as TuneRow, rows[4] as TuneRow])).toBeUndefined();
    expect(pickBest([], 10)).toBeUndefined();
  });
});
