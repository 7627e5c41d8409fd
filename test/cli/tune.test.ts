import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { saveModel } from '../../compiler/onnx/index.js';
import { buildMlp } from '../../models/samples.js';
import { writeArtifact } from '../../runtime/artifact/index.js';
import { readTuneChoices } from '../../runtime/tuning/choice.js';
import type { TuneReport } from '../../runtime/tuning/tune.js';
import { runCli } from '../helpers/cli.js';
import { manifestDraft } from '../helpers/manifest-draft.js';
import { suiteTmpDir } from '../helpers/tmp.js';

/** Two WASM sweeps in child processes (tsx start-up each) besides the parent's own start-up. */
const ISOLATED_TIMEOUT_MS = 120_000; // milliseconds
/** Few calls: the CLI's wiring is under test, not the numbers. */
const FAST = ['--warmup', '1', '--iterations', '5'];

/** stderr is not a terminal under test: progress arrives as timestamped lines, and nothing else may. */
function onlyProgress(stderr: string): boolean {
  return stderr
    .split('\n')
    .filter((l) => l !== '')
    .every((l) => /^\d{4}-\d\d-\d\dT[\d:.]+Z tune: sweep \d+\/\d+/.test(l));
}

let dir: string;
let dispose: () => Promise<void>;
let artifact: string;

beforeAll(async () => {
  ({ dir, dispose } = await suiteTmpDir());
  const model = join(dir, 'mlp.onnx');
  await saveModel(buildMlp().proto, model);
  const manifest = manifestDraft({
    name: 'mlp',
    version: '1.0.0',
    inputs: [{ name: 'x', dtype: 'float32', shape: ['batch', 16] }],
    outputs: [{ name: 'logits', dtype: 'float32', shape: ['batch', 10] }],
  });
  artifact = join(dir, 'artifact');
  await writeArtifact(artifact, { manifest, files: [{ path: 'variants/mlp.onnx', from: model }] });
});
afterAll(() => dispose());

describe('outpost tune', () => {
  it('prints the table, marks the choice and writes a tuning file readTuneChoices accepts', async () => {
    const out = join(dir, 'tuning.json');
    const args = ['tune', artifact, '--backends', 'native', '--threads', '1,2', '--batch', '1,4', ...FAST];
    const { code, stdout, stderr } = await runCli([...args, '--out', out]);
    expect(onlyProgress(stderr)).toBe(true);
    expect(code).toBe(0);
    const lines = stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^mlp@1\.0\.0 on .+ \(\d+ cpus, \w+\/\w+\)$/);
    expect(lines[1]).toMatch(
      /^\s+variant\s+backend\s+threads\s+batch\s+p50 ms\s+p90 ms\s+p99 ms\s+items\/s\s+calls\/s/,
    );
    const rows = lines.slice(3, -1);
    expect(rows).toHaveLength(4); // 1 variant × 1 backend × 2 thread counts × 2 batch sizes
    expect(rows.filter((r) => r.startsWith('*'))).toHaveLength(1);
    expect(lines.at(-1)).toMatch(/^best: fp32 on native, [12] thread\(s\), .+ \(lowest p50\)$/);
    const choice = (await readTuneChoices(out)).get('mlp');
    expect(choice).toMatchObject({ model: 'mlp', version: '1.0.0', variant: 'fp32', backend: 'native' });
  });

  it('--json prints the whole sweep; --max-p99-ms picks by throughput within the bound', async () => {
    const args = ['tune', artifact, '--backends', 'native', '--threads', '1', '--batch', '1,8', ...FAST];
    const { code, stdout } = await runCli([...args, '--max-p99-ms', '10000', '--json']);
    expect(code).toBe(0);
    const report = JSON.parse(stdout) as TuneReport;
    expect(report.results.map((r) => r.batch)).toEqual([1, 8]);
    const fastest = [...report.results].sort(
      (a, b) => (b.measured?.throughput_per_s ?? 0) - (a.measured?.throughput_per_s ?? 0),
    )[0];
    expect(report.best).toMatchObject({ criterion: 'highest throughput with p99 ≤ 10000 ms' });
    expect(report.best?.batch?.maxBatchSize ?? 1).toBe(fastest?.batch);
  });

  it(
    'measures every WASM thread count, each in a fresh process',
    async () => {
      const args = ['tune', artifact, '--backends', 'wasm', '--threads', '1,2', '--batch', '1', ...FAST, '--json'];
      const { code, stdout, stderr } = await runCli(args, { timeoutMs: ISOLATED_TIMEOUT_MS });
      expect(onlyProgress(stderr)).toBe(true);
      expect(code).toBe(0);
      const report = JSON.parse(stdout) as TuneReport;
      expect(report.results.map((r) => [r.backend, r.threads, r.measured !== undefined])).toEqual([
        ['wasm', 1, true],
        ['wasm', 2, true],
      ]);
    },
    ISOLATED_TIMEOUT_MS,
  );

  it('fails in one line when the model is missing or no option is valid', async () => {
    const missing = await runCli(['tune', join(dir, 'missing.onnx'), '--backends', 'native', '--threads', '1']);
    expect(missing.code).toBe(1);
    expect(missing.stderr.trim()).toMatch(/^outpost: .*missing\.onnx.* \[FILE_NOT_FOUND\]$/);
    const bad = await runCli(['tune', artifact, '--backends', 'cuda']);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/"cuda" is not among native, wasm/);
  });
});
