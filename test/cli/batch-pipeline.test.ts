import { execFileSync } from 'node:child_process';
import { appendFile, cp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { characterAccuracy, renderTextImage } from '../../bench/pipeline/text-images.js';
import { buildPipeline } from '../../compiler/index.js';
import type { BatchSummary } from '../../runtime/batch/index.js';
import type { PipelineBenchReport } from '../../runtime/tuning/index.js';
import { batchKilledAt, batchLines } from '../helpers/batch-runs.js';
import { runCli } from '../helpers/cli.js';
import { ROOT } from '../helpers/models.js';
import { suiteTmpDir } from '../helpers/tmp.js';

const BUILD_TIMEOUT_MS = 120_000; // ms: the build bundles the two PP-OCRv4 models
const CLI_TIMEOUT_MS = 120_000; // ms for one `outpost batch` child: tsx start-up, both OCR models, a few pages
const PARTIAL_TIMEOUT_MS = 90_000; // ms for the killed run to write the inputs before the stalled one
const TEST_TIMEOUT_MS = 360_000; // ms: three CLI children, each loading the pipeline on 2 shared cores
const EXIT_SOME_FAILED = 2; // cli/commands/batch.ts
const ACCURACY_GATE = 0.95; // character accuracy over the pages (issue 17)

interface Line {
  name: string;
  outputs?: Record<string, { datatype: string; shape: number[]; data: unknown[] }>;
  error?: { code: string; message: string };
}

const linesOf = (path: string): Promise<Line[]> => batchLines<Line>(path);
const byName = (lines: readonly Line[]) => [...lines].sort((a, b) => a.name.localeCompare(b.name));

let root: string;
let dispose: () => Promise<void>;
let ocr: string;

beforeAll(async () => {
  ({ dir: root, dispose } = await suiteTmpDir('outpost-batch-pipeline-'));
  ocr = join(root, 'ocr');
  await buildPipeline({ source: join(ROOT, 'examples', 'ocr', 'pipeline.json'), target: 'host', output: ocr });
}, BUILD_TIMEOUT_MS);

afterAll(async () => {
  await dispose();
});

/**
 * `outpost batch` over the OCR pipeline (examples/ocr): rendered pages in, each page's `text` (BYTES, lines top to
 * bottom) out; a corrupt page is a counted line, not a stop; after a real SIGKILL, --resume runs only what is left.
 */
describe('outpost batch <pipeline>', () => {
  it(
    'reads every page (a corrupt one counted, exit 2) and resumes after SIGKILL with each page once, as a clean run',
    async () => {
      // Pages before and after one that stalls (a FIFO nobody writes): the killed run has written exactly the first.
      const first = join(root, 'first');
      const second = join(root, 'second');
      await mkdir(first);
      await mkdir(second);
      const want = new Map<string, readonly string[]>();
      for (const [name, index, dir] of [
        ['a0.png', 0, first],
        ['b0.png', 2, second],
      ] as const) {
        const page = await renderTextImage(index);
        await writeFile(join(dir, name), page.png);
        want.set(name, page.lines);
      }
      await writeFile(join(first, 'a1.png'), Buffer.from('not a PNG: a torn upload'));
      const stall = join(root, 'stall.png');
      execFileSync('mkfifo', [stall]); // Node has no mkfifo(3); coreutils does
      const args = ['batch', ocr, first, stall, second];
      const out = join(root, 'killed.jsonl');
      expect(await batchKilledAt(args, out, 2, PARTIAL_TIMEOUT_MS)).toBe('SIGKILL');
      // A write cut short by the kill: resume must not take it for an input.
      await appendFile(out, '{"name":"stall.png","outputs":{"text":{"datat');
      await rm(stall);
      const stalled = await renderTextImage(1);
      await writeFile(stall, stalled.png);
      want.set('stall.png', stalled.lines);

      const resumed = await runCli([...args, '-o', out, '--resume', '--json'], { timeoutMs: CLI_TIMEOUT_MS });
      expect(resumed.code, resumed.stderr).toBe(EXIT_SOME_FAILED);
      const summary = JSON.parse(resumed.stdout) as BatchSummary;
      expect(summary).toMatchObject({ inputs: 4, resumed: 2, ran: 2, succeeded: 3, failed: 1 });
      expect(summary.errors).toEqual({ INPUT_INVALID: 1 });
      expect(summary.subject).toMatchObject({ name: 'ocr', variant: 'pipeline' });
      const lines = await linesOf(out); // every line parses: the torn one is gone
      expect(lines.map((l) => l.name)).toEqual(['a0.png', 'a1.png', stall, 'b0.png']);
      expect(lines[1]?.error?.message).toMatch(/step "decode"/);
      const pairs = lines.flatMap((l) => {
        const text = l.outputs?.text;
        if (text === undefined) return [];
        expect(text.datatype).toBe('BYTES');
        expect(l.outputs?.boxes?.shape).toEqual([text.data.length, 4, 2]);
        return [{ got: text.data as string[], want: want.get(l.name.replace(`${root}/`, '')) ?? [] }];
      });
      expect(pairs).toHaveLength(3);
      expect(characterAccuracy(pairs)).toBeGreaterThanOrEqual(ACCURACY_GATE);

      const clean = join(root, 'clean.jsonl');
      const reference = await runCli([...args, '-o', clean], { timeoutMs: CLI_TIMEOUT_MS });
      expect(reference.code, reference.stderr).toBe(EXIT_SOME_FAILED);
      expect(reference.stdout).toMatch(/4 inputs: 3 answered, 1 failed/);
      expect(byName(lines)).toEqual(byName(await linesOf(clean)));
    },
    TEST_TIMEOUT_MS,
  );
});

describe('outpost bench <pipeline>', () => {
  it(
    'times each step and the whole request from the same runs (--json); no --input: the recorded test vector, none: asks for --input',
    async () => {
      const page = join(root, 'bench.png');
      await writeFile(page, (await renderTextImage(3)).png);
      const result = await runCli(['bench', ocr, '--input', page, '--warmup', '0', '--iterations', '2', '--json'], {
        timeoutMs: CLI_TIMEOUT_MS,
      });
      expect(result.code, result.stderr).toBe(0);
      const report = JSON.parse(result.stdout) as PipelineBenchReport;
      expect(report).toMatchObject({ pipeline: 'ocr', iterations: 2, concurrency: 1 });
      expect(report.steps.map((s) => s.id)).toEqual(['decode', 'prepare', 'det', 'boxes', 'crop', 'rec', 'ctc']);
      expect(report.steps.find((s) => s.id === 'rec')).toMatchObject({ kind: 'model', what: 'rec', batch: 8 });
      // The steps run one after the other inside each request: their means add up to at most the whole.
      const sum = report.steps.reduce((total, s) => total + s.mean_ms, 0);
      expect(sum).toBeGreaterThan(0);
      expect(sum).toBeLessThanOrEqual(report.end_to_end.mean_ms);
      expect(report).toMatchObject({ request: { from: 'input', what: page } });
      // No --input: the artifact's first recorded end-to-end test vector (examples/ocr records one), as for a model.
      const bare = await runCli(['bench', ocr, '--warmup', '0', '--iterations', '1', '--json'], {
        timeoutMs: CLI_TIMEOUT_MS,
      });
      expect(bare.code, bare.stderr).toBe(0);
      expect(JSON.parse(bare.stdout)).toMatchObject({
        iterations: 1,
        request: { from: 'test-vector', what: 'case-0' },
      });
      // A pipeline without vectors (the same artifact, its manifest's testVectors dropped) has nothing to time.
      const plain = join(root, 'ocr-no-vectors');
      await cp(ocr, plain, { recursive: true });
      const manifest = JSON.parse(await readFile(join(plain, 'manifest.json'), 'utf8')) as Record<string, unknown>;
      delete manifest.testVectors;
      await writeFile(join(plain, 'manifest.json'), JSON.stringify(manifest));
      const none = await runCli(['bench', plain], { timeoutMs: CLI_TIMEOUT_MS });
      expect(none.code).toBe(1);
      expect(none.stderr).toMatch(/no recorded test vectors.*--input <file>.*\[INVALID_ARGUMENT\]/);
    },
    TEST_TIMEOUT_MS,
  );
});
