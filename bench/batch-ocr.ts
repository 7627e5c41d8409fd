/**
 * The OCR half of bench/batch.ts (README.md, "Batch transform"): `outpost batch` of the OCR pipeline
 * (examples/ocr, built here with `outpost pipeline build`) over `pages` rendered pages, against the loop a script
 * would write without it, `outpost run <pipeline> --input <png> --json` once per page, in the same run. Every page's
 * text from the batch is checked against the loop's (the same lines), and graded against the rendered text.
 */
import { spawn } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { characterAccuracy, renderTextImage } from './pipeline/text-images.js';

export interface OcrBatchReport {
  readonly pages: number;
  readonly batch_seconds: number;
  readonly run_seconds: number;
  /** Pages per second of `outpost batch` over those of the `outpost run` loop. */
  readonly ratio: number;
  /** Pages whose text differs between `outpost batch` and `outpost run`. */
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

export async function ocrBatch(main: string, dir: string, pages: number): Promise<OcrBatchReport> {
  const root = join(import.meta.dirname, '..');
  const artifact = join(dir, 'ocr');
  await ok(main, ['pipeline', 'build', join(root, 'examples', 'ocr', 'pipeline.json'), '-o', artifact]);
  const inputs = join(dir, 'pages');
  await mkdir(inputs);
  const names = Array.from({ length: pages }, (_, i) => `page${String(i).padStart(3, '0')}.png`);
  const want = new Map<string, readonly string[]>();
  for (const [i, name] of names.entries()) {
    const page = await renderTextImage(i);
    await writeFile(join(inputs, name), page.png);
    want.set(name, page.lines);
  }
  const out = join(dir, 'ocr.jsonl');
  let started = performance.now();
  await ok(main, ['batch', artifact, inputs, '-o', out, '--json', '--nice', '0']);
  const batchSeconds = (performance.now() - started) / 1000;
  const texts = new Map(
    (await readFile(out, 'utf8'))
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => JSON.parse(l) as { name: string; outputs: { text: { data: string[] } } })
      .map((l) => [l.name, l.outputs.text.data]),
  );
  let mismatches = 0;
  started = performance.now();
  for (const name of names) {
    const answer = JSON.parse(await ok(main, ['run', artifact, '--input', join(inputs, name), '--json'])) as {
      outputs: { text: { data: string[] } };
    };
    if (JSON.stringify(texts.get(name)) !== JSON.stringify(answer.outputs.text.data)) mismatches++;
  }
  const runSeconds = (performance.now() - started) / 1000;
  const accuracy = characterAccuracy(names.map((n) => ({ got: texts.get(n) ?? [], want: want.get(n) ?? [] })));
  return {
    pages,
    batch_seconds: batchSeconds,
    run_seconds: runSeconds,
    ratio: runSeconds / batchSeconds,
    mismatches,
    accuracy,
  };
}
