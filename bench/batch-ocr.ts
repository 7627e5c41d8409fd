/**
 * The OCR half of bench/batch.ts (README.md, "Batch transform"): `outpost batch` of the OCR pipeline
 * (examples/ocr, built here with `outpost pipeline build`) over `count` rendered images — pages (TEXT_PAGE) or small
 * images of 2–3 lines (TEXT_SNIPPET) — against the loop a script would write without it, `outpost run <pipeline>
 * --input <png> --json` once per image, in the same run. The loop runs every image, or with `runSample` a uniform
 * random subset of that many (seeded; its rate then stands for the loop's). Every image's text from the batch is
 * checked against the loop's (the same lines), and the batch is graded against the rendered text.
 */
import { spawn } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { seededRandom } from '../runtime/tensor/tensor.js';
import { characterAccuracy, renderTextImage, TEXT_PAGE, TEXT_SNIPPET } from './pipeline/text-images.js';

export interface OcrBatchOptions {
  readonly count: number;
  readonly shape: 'page' | 'snippet';
  /** Run the `outpost run` loop on this many images drawn uniformly at random (default: all). */
  readonly runSample?: number;
}

export interface OcrBatchReport {
  readonly shape: 'page' | 'snippet';
  /** Images through `outpost batch`. */
  readonly pages: number;
  /** Images through the `outpost run` loop (all, or the random subset). */
  readonly run_pages: number;
  readonly batch_seconds: number;
  readonly run_seconds: number;
  /** Images per second of `outpost batch` over those of the `outpost run` loop. */
  readonly ratio: number;
  /** Images (of the loop's) whose text differs between `outpost batch` and `outpost run`. */
  readonly mismatches: number;
  readonly accuracy: number;
}

function cli(main: string, args: readonly string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [main, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

async function ok(main: string, args: readonly string[]): Promise<string> {
  const result = await cli(main, args);
  if (result.code !== 0) throw new Error(`outpost ${args.join(' ')} failed (${result.code}): ${result.stderr}`);
  return result.stdout;
}

/** `k` of `n` indices, uniformly at random (a seeded partial Fisher–Yates shuffle), in ascending order. */
function sample(n: number, k: number): number[] {
  const random = seededRandom(1717);
  const pool = Array.from({ length: n }, (_, i) => i);
  for (let i = 0; i < Math.min(k, n); i++) {
    const j = i + Math.floor(random() * (n - i));
    [pool[i], pool[j]] = [pool[j] ?? j, pool[i] ?? i];
  }
  return pool.slice(0, Math.min(k, n)).sort((a, b) => a - b);
}

export async function ocrBatch(main: string, dir: string, options: OcrBatchOptions): Promise<OcrBatchReport> {
  const pages = options.count;
  const root = join(import.meta.dirname, '..');
  const artifact = join(dir, 'ocr');
  await ok(main, ['pipeline', 'build', join(root, 'examples', 'ocr', 'pipeline.json'), '-o', artifact]);
  const inputs = join(dir, 'pages');
  await mkdir(inputs);
  const names = Array.from({ length: pages }, (_, i) => `page${String(i).padStart(3, '0')}.png`);
  const want = new Map<string, readonly string[]>();
  const shape = options.shape === 'snippet' ? TEXT_SNIPPET : TEXT_PAGE;
  for (const [i, name] of names.entries()) {
    const page = await renderTextImage(i, shape);
    await writeFile(join(inputs, name), page.png);
    want.set(name, page.lines);
  }
  const out = join(dir, 'ocr.jsonl');
  let started = performance.now();
  await ok(main, ['batch', artifact, inputs, '-o', out, '--json', '--nice', '0']);
  const batchSeconds = (performance.now() - started) / 1000;
  process.stderr.write(`batch: ${pages} images in ${batchSeconds.toFixed(1)} s\n`);
  const texts = new Map(
    (await readFile(out, 'utf8'))
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => JSON.parse(l) as { name: string; outputs: { text: { data: string[] } } })
      .map((l) => [l.name, l.outputs.text.data]),
  );
  let mismatches = 0;
  const looped = options.runSample === undefined ? names : sample(pages, options.runSample).map((i) => names[i] ?? '');
  let done = 0;
  started = performance.now();
  for (const name of looped) {
    const answer = JSON.parse(await ok(main, ['run', artifact, '--input', join(inputs, name), '--json'])) as {
      outputs: { text: { data: string[] } };
    };
    if (JSON.stringify(texts.get(name)) !== JSON.stringify(answer.outputs.text.data)) mismatches++;
    done++;
    if (done % 10 === 0) process.stderr.write(`run loop: ${done}/${looped.length}\n`);
  }
  const runSeconds = (performance.now() - started) / 1000;
  const accuracy = characterAccuracy(names.map((n) => ({ got: texts.get(n) ?? [], want: want.get(n) ?? [] })));
  return {
    shape: options.shape,
    pages,
    run_pages: looped.length,
    batch_seconds: batchSeconds,
    run_seconds: runSeconds,
    ratio: pages / batchSeconds / (looped.length / runSeconds),
    mismatches,
    accuracy,
  };
}
