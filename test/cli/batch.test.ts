import { execFileSync } from 'node:child_process';
import { appendFile, copyFile, mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BatchSummary } from '../../runtime/batch/index.js';
import { encodeNpy } from '../../runtime/tensor/npy.js';
import { seededRandom } from '../../runtime/tensor/tensor.js';
import { batchKilledAt, batchLines } from '../helpers/batch-runs.js';
import { runCli } from '../helpers/cli.js';
import { buildFixture, testImage } from '../helpers/serving-artifacts.js';
import { suiteTmpDir } from '../helpers/tmp.js';

const CLI_TIMEOUT_MS = 90_000; // ms for one `outpost batch` child (tsx start-up included) on a loaded 2-core box
const PARTIAL_TIMEOUT_MS = 60_000; // ms for the killed run to write the inputs before the stalled one
const TEST_TIMEOUT_MS = 180_000; // ms per test: a few CLI children each
const EXIT_SOME_FAILED = 2; // cli/commands/batch.ts

interface Line {
  name: string;
  outputs?: Record<string, { datatype: string; shape: number[]; data: number[] }>;
  postprocess?: { top?: { label?: string }[] };
  error?: { code: string; message: string };
}

const linesOf = (path: string): Promise<Line[]> => batchLines<Line>(path);
const byName = (lines: readonly Line[]) => [...lines].sort((a, b) => a.name.localeCompare(b.name));
const image = (seed: number) => Float32Array.from({ length: 3 * 64 * 64 }, seededRandom(seed));

let root: string;
let dispose: () => Promise<void>;
let classifier: string;
let mlp: string;

beforeAll(async () => {
  ({ dir: root, dispose } = await suiteTmpDir('outpost-batch-'));
  classifier = await buildFixture(root, 'classifier');
  mlp = await buildFixture(root, 'mlp');
  // A directory of real inputs for the image classifier: pictures, tensors, a request, and two bad ones.
  const inputs = join(root, 'in');
  await mkdir(join(inputs, 'sub'), { recursive: true });
  for (let i = 0; i < 6; i++) await writeFile(join(inputs, `img${i}.png`), await testImage('png', i + 1));
  await writeFile(join(inputs, 'sub', 'photo.jpg'), await testImage('jpeg', 42));
  await writeFile(join(inputs, 'tensor.npy'), encodeNpy({ data: image(7), shape: [1, 3, 64, 64], dtype: 'float32' }));
  const request = { inputs: [{ name: 'image', shape: [1, 3, 64, 64], datatype: 'FP32', data: [...image(8)] }] };
  await writeFile(join(inputs, 'request.json'), JSON.stringify(request));
  await writeFile(join(inputs, 'corrupt.jpg'), Buffer.from('not a JPEG: the first bytes of a torn upload'));
  await writeFile(join(inputs, 'wrong.npy'), encodeNpy({ data: image(9), shape: [1, 3, 32, 128], dtype: 'float32' }));
  await writeFile(join(inputs, 'README.txt'), 'not an input: skipped');
}, TEST_TIMEOUT_MS);

afterAll(async () => {
  await dispose();
});

describe('outpost batch', () => {
  it(
    'runs every input of a directory, answers as run does, and counts the bad ones without stopping (exit 2)',
    async () => {
      const out = join(root, 'dir.jsonl');
      const result = await runCli(['batch', classifier, join(root, 'in'), '-o', out, '--json'], {
        timeoutMs: CLI_TIMEOUT_MS,
      });
      expect(result.code, result.stderr).toBe(EXIT_SOME_FAILED);
      const summary = JSON.parse(result.stdout) as BatchSummary;
      expect(summary).toMatchObject({ inputs: 11, ran: 11, succeeded: 9, failed: 2, resumed: 0, remaining: 0 });
      expect(summary.errors).toEqual({ INPUT_INVALID: 1, INPUT_SHAPE_MISMATCH: 1 });
      expect(result.stderr).toMatch(/batch: classifier@1\.0\.0 11\/11/); // progress on stderr, not stdout

      const lines = await linesOf(out);
      expect(lines.map((l) => l.name)).toEqual([
        'corrupt.jpg',
        'img0.png',
        'img1.png',
        'img2.png',
        'img3.png',
        'img4.png',
        'img5.png',
        'request.json',
        'sub/photo.jpg',
        'tensor.npy',
        'wrong.npy',
      ]);
      const named = new Map(lines.map((l) => [l.name, l]));
      expect(named.get('corrupt.jpg')?.error?.code).toBe('INPUT_INVALID');
      expect(named.get('wrong.npy')?.error).toMatchObject({ code: 'INPUT_SHAPE_MISMATCH' });
      expect(named.get('wrong.npy')?.error?.message).toMatch(/\[1, 3, 32, 128\]/);
      const photo = named.get('sub/photo.jpg');
      expect(photo?.outputs?.logits?.shape).toEqual([1, 10]);
      expect(photo?.postprocess?.top?.[0]?.label).toMatch(/^class-\d$/);

      // The same picture through `outpost run`: the same logits, to the bit (batching does not change a row).
      const run = await runCli(['run', classifier, '--input', join(root, 'in', 'sub', 'photo.jpg'), '--json'], {
        timeoutMs: CLI_TIMEOUT_MS,
      });
      expect(run.code, run.stderr).toBe(0);
      const single = JSON.parse(run.stdout) as { outputs: { logits: { data: number[] } } };
      expect(photo?.outputs?.logits?.data).toEqual(single.outputs.logits.data);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'takes a quoted glob and .jsonl files (requests, file paths, a line that is not JSON), and batches them',
    async () => {
      const random = seededRandom(5);
      const rows = Array.from({ length: 24 }, (_, i) => ({ id: `row-${i}`, x: [Array.from({ length: 16 }, random)] }));
      const jsonl = join(root, 'rows.jsonl');
      await writeFile(jsonl, `${rows.map((r) => JSON.stringify(r)).join('\n')}\n{"id": "torn", "x": [1, 2\n\n`);
      const out = join(root, 'rows.jsonl.out');
      const rowsRun = await runCli(['batch', mlp, jsonl, '-o', out, '--json'], { timeoutMs: CLI_TIMEOUT_MS });
      expect(rowsRun.code, rowsRun.stderr).toBe(EXIT_SOME_FAILED);
      const summary = JSON.parse(rowsRun.stdout) as BatchSummary;
      expect(summary).toMatchObject({ inputs: 25, succeeded: 24, failed: 1, errors: { INPUT_INVALID: 1 } });
      // Every request is decoded before the first batch ends: after the two that start at once, batches fill up.
      expect(summary.model_runs).toBeLessThan(summary.succeeded);
      expect(summary.mean_batch).toBeGreaterThan(1);
      const lines = await linesOf(out);
      expect(lines.map((l) => l.name)).toEqual([...rows.map((r) => r.id), `${jsonl}:25`]);
      expect(lines[0]?.outputs?.logits?.shape).toEqual([1, 10]);

      const paths = join(root, 'paths.jsonl');
      await writeFile(paths, `{"path": "in/img0.png"}\n{"id": "again", "path": "in/sub/photo.jpg"}\n`);
      const mixed = join(root, 'mixed.jsonl');
      const result = await runCli(['batch', classifier, join(root, 'in', 'img[1-3].*'), paths, '-o', mixed], {
        timeoutMs: CLI_TIMEOUT_MS,
      });
      expect(result.code, result.stderr).toBe(0);
      expect(result.stdout).toMatch(/5 inputs: 5 answered, 0 failed/);
      const names = (await linesOf(mixed)).map((l) => l.name);
      expect(names).toEqual([1, 2, 3].map((i) => join(root, 'in', `img${i}.png`)).concat(['in/img0.png', 'again']));
    },
    TEST_TIMEOUT_MS,
  );

  it(
    "takes the batch size (and threads) from the tuning file named by the device agent's config",
    async () => {
      const random = seededRandom(6);
      const jsonl = join(root, 'tuned.jsonl');
      const rows = Array.from({ length: 12 }, (_, i) =>
        JSON.stringify({ id: `t${i}`, x: [Array.from({ length: 16 }, random)] }),
      );
      await writeFile(jsonl, `${rows.join('\n')}\n`);
      const measured = { p50_ms: 1, p90_ms: 1, p99_ms: 1, mean_ms: 1, throughput_per_s: 1, calls_per_s: 1, load_ms: 1 };
      const tune = {
        model: 'mlp',
        version: '1.0.0',
        variant: 'fp32',
        backend: 'native',
        threads: 1,
        measured,
        criterion: 'test',
      };
      await writeFile(
        join(root, 'tune.json'),
        JSON.stringify({ ...tune, batch: { maxBatchSize: 2, maxQueueDelayMs: 0 } }),
      );
      await writeFile(join(root, 'agent.json'), JSON.stringify({ thing: 'pi-1', tuning: join(root, 'tune.json') }));
      const out = join(root, 'tuned.out.jsonl');
      const args = ['batch', mlp, jsonl, '-o', out, '--json', '--agent-config', join(root, 'agent.json')];
      const result = await runCli(args, { timeoutMs: CLI_TIMEOUT_MS });
      expect(result.code, result.stderr).toBe(0);
      const summary = JSON.parse(result.stdout) as BatchSummary;
      expect(summary.succeeded).toBe(12);
      expect(summary.mean_batch).toBeLessThanOrEqual(2); // 12 rows decoded at once, batches of at most 2
      expect(summary.model_runs).toBeGreaterThanOrEqual(6);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'after a SIGKILL mid-run, --resume drops the torn line and writes each input exactly once, as a clean run would',
    async () => {
      // Inputs before and after one that stalls (a FIFO nobody writes): the killed run has written exactly the first.
      const first = join(root, 'first');
      const second = join(root, 'second');
      await mkdir(first);
      await mkdir(second);
      for (let i = 0; i < 5; i++) {
        await copyFile(join(root, 'in', `img${i}.png`), join(first, `a${i}.png`));
        await writeFile(join(second, `b${i}.png`), await testImage('png', 100 + i));
      }
      const stall = join(root, 'stall.npy');
      execFileSync('mkfifo', [stall]); // Node has no mkfifo(3); coreutils does
      const args = ['batch', classifier, first, stall, second];
      const out = join(root, 'killed.jsonl');
      expect(await batchKilledAt(args, out, 5, PARTIAL_TIMEOUT_MS)).toBe('SIGKILL');
      // A write cut short by the kill (the page cache kept half a line): resume must not take it for an input.
      await appendFile(out, '{"name":"b0.png","outputs":{"logits":{"datat');
      await rm(stall);
      await writeFile(stall, encodeNpy({ data: image(11), shape: [1, 3, 64, 64], dtype: 'float32' }));

      const again = await runCli([...args, '-o', out], { timeoutMs: CLI_TIMEOUT_MS });
      expect(again.code).toBe(1); // an existing output is never overwritten by accident
      expect(again.stderr).toMatch(/--resume to continue it.*\[ALREADY_EXISTS\]/);

      const resumed = await runCli([...args, '-o', out, '--resume', '--json'], { timeoutMs: CLI_TIMEOUT_MS });
      expect(resumed.code, resumed.stderr).toBe(0);
      expect(JSON.parse(resumed.stdout)).toMatchObject({ inputs: 11, resumed: 5, ran: 6, succeeded: 11, failed: 0 });
      const lines = await linesOf(out); // every line parses: the torn one is gone
      expect(new Set(lines.map((l) => l.name)).size).toBe(11);
      expect(lines).toHaveLength(11);

      const clean = join(root, 'clean.jsonl');
      const reference = await runCli([...args, '-o', clean], { timeoutMs: CLI_TIMEOUT_MS });
      expect(reference.code, reference.stderr).toBe(0);
      expect(byName(lines)).toEqual(byName(await linesOf(clean)));
    },
    TEST_TIMEOUT_MS,
  );
});
