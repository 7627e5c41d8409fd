/**
 * OCR pipeline bench (README "Pipelines"): p50 per image of `POST /v2/models/ocr/infer` with an image body (every
 * step in the server, all crops of an image through the recogniser in ⌈N / 8⌉ runs) against a client that calls the
 * same models one by one over the same server — the detector, then the recogniser once per crop, doing the image
 * preparation, mask-to-boxes, crop and CTC decoding itself with the same transforms — and against that client
 * sending all crops in one recogniser request (to separate the batching from the round trips). Subjects interleaved
 * image by image, same run, same server (`outpost serve` as a child process). Character accuracy of each, and
 * with `--int8` (the int8 detector compiled here: `compile --precision int8 --input-shape x=1,3,640,640`, calibrated
 * on 5 pages of bench/compiler/text-pages.ts, not the graded set) or `--int8-det <artifact>` (one compiled before)
 * the int8 pipeline against the fp32 one on the same rendered set, both at the same fixed 640 × 640 input.
 * `--precision-only` skips the HTTP comparison.
 *
 *   npx tsx bench/pipeline/ocr.ts [--images 20] [--int8 | --int8-det /tmp/det-int8] [--precision-only] [--json]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildPipeline, compile } from '../../compiler/index.js';
import { writeTextPages } from '../compiler/text-pages.js';
import type { TensorValue } from '../../runtime/backends/index.js';
import { openPipeline } from '../../runtime/pipeline/index.js';
import { TRANSFORMS, type TransformRun } from '../../runtime/pipeline/transforms/index.js';
import { latencyStats } from '../../runtime/tuning/stats.js';
import { ok, target, type Reply, type Target } from '../server/client.js';
import { characterAccuracy, renderTextImage } from './text-images.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const EXAMPLE = join(ROOT, 'examples', 'ocr', 'pipeline.json');
const args = process.argv.slice(2);
const flag = (name: string) => {
  const i = args.indexOf(name);
  return i < 0 ? undefined : args[i + 1];
};
const IMAGES = Number(flag('--images') ?? 20);
const INT8_DET = flag('--int8-det');
const INT8 = args.includes('--int8');
const PRECISION_ONLY = args.includes('--precision-only');
const DETECTOR = join(ROOT, 'node_modules', '@gutenye', 'ocr-models', 'assets', 'ch_PP-OCRv4_det_infer.onnx');
const CALIBRATION_PAGES = 5; // as test/compiler/compile/detector.test.ts: 4 calibrate, 1 grades the variant
const JSON_OUT = args.includes('--json');

interface Example {
  steps: { id: string; transform?: string; params?: Record<string, unknown> }[];
  models: Record<string, unknown>;
  files: Record<string, string>;
}

async function serve(paths: readonly string[]): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', join(ROOT, 'cli', 'main.ts'), 'serve', ...paths, '--port', '0', '--json'],
    {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'inherit'],
      env: { ...process.env, OUTPOST_LOG_LEVEL: 'warn' },
    },
  );
  let text = '';
  const url = await new Promise<string>((done, fail) => {
    child.stdout.on('data', (chunk: Buffer) => {
      text += chunk.toString('utf8');
      try {
        done((JSON.parse(text) as { url: string }).url);
      } catch {
        // not the whole object yet
      }
    });
    child.once('exit', (code) => fail(new Error(`outpost serve exited with ${code}`)));
  });
  return { child, url };
}

/** A binary-tensor request for one float input; the reply's first output with its shape. */
async function inferBinary(to: Target, model: string, input: string, t: TensorValue): Promise<TensorValue> {
  const data = t.data as Float32Array;
  const bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const header = Buffer.from(
    JSON.stringify({
      inputs: [{ name: input, shape: t.dims, datatype: 'FP32', parameters: { binary_data_size: bytes.length } }],
      parameters: { binary_data_output: true },
    }),
  );
  const reply: Reply = await ok(to, {
    path: `/v2/models/${model}/infer`,
    body: Buffer.concat([header, bytes]),
    headers: { 'content-type': 'application/octet-stream', 'inference-header-content-length': header.length },
  });
  const length = Number(reply.headers['inference-header-content-length']);
  const head = JSON.parse(reply.body.subarray(0, length).toString('utf8')) as { outputs: { shape: number[] }[] };
  const out = reply.body.subarray(length);
  const copy = new Float32Array(out.byteLength / 4);
  Buffer.from(copy.buffer).set(out);
  return { type: 'float32', data: copy, dims: head.outputs[0]?.shape ?? [] };
}

/** The int8 detector at 640 × 640 for this host, compiled and calibrated here (`--int8`). */
async function compileInt8Detector(work: string): Promise<string> {
  const pages = await writeTextPages(join(work, 'calibration'), CALIBRATION_PAGES, 640);
  const output = join(work, 'det-int8');
  process.stderr.write('compiling the int8 detector (640 × 640, calibrated on rendered pages)…\n');
  const report = await compile({
    model: DETECTOR,
    target: 'host',
    precision: 'int8',
    inputShapes: { x: [1, 3, 640, 640] },
    calibration: pages,
    output,
  });
  const [variant] = report.variants;
  process.stderr.write(`int8 detector: ${variant?.precision ?? '?'}, cosine ${variant?.accuracy?.cosine ?? '?'}\n`);
  return output;
}

function printPrecision(precision: Awaited<ReturnType<typeof int8VsFp32>>): void {
  console.log('\n| detector (640 × 640 fixed) | character accuracy | det p50 ms |\n| --- | --- | --- |');
  for (const p of precision)
    console.log(`| ${p.precision} | ${(p.accuracy * 100).toFixed(2)} % | ${p.det_p50_ms.toFixed(0)} |`);
}

async function main(): Promise<void> {
  const work = await mkdtemp(join(tmpdir(), 'outpost-bench-ocr-'));
  let server: ChildProcess | undefined;
  try {
    const int8Det = INT8 ? await compileInt8Detector(work) : INT8_DET;
    if (PRECISION_ONLY) {
      if (int8Det === undefined) throw new Error('--precision-only needs --int8 or --int8-det <artifact>');
      const images = await Promise.all(Array.from({ length: IMAGES }, (_, i) => renderTextImage(i)));
      const example = JSON.parse(await readFile(EXAMPLE, 'utf8')) as Example;
      const precision = await int8VsFp32(work, example, int8Det, images);
      if (JSON_OUT) console.log(JSON.stringify({ images: IMAGES, precision }, null, 2));
      else {
        console.log(`${IMAGES} rendered images (bench/pipeline/text-images.ts), the same set for both`);
        printPrecision(precision);
      }
      return;
    }
    const dir = join(work, 'ocr');
    await buildPipeline({ source: EXAMPLE, target: 'host', output: dir });
    const manifest = (p: string) =>
      readFile(join(dir, 'models', p, 'manifest.json'), 'utf8').then((t) => (JSON.parse(t) as { name: string }).name);
    const [detName, recName] = [await manifest('det'), await manifest('rec')];
    const started = await serve([dir, join(dir, 'models', 'det'), join(dir, 'models', 'rec')]);
    server = started.child;
    const to = target(started.url, 1);
    // The client's own copies of the transforms, bound exactly as the pipeline binds them.
    const example = JSON.parse(await readFile(EXAMPLE, 'utf8')) as Example;
    const bound: Record<string, TransformRun> = {};
    for (const step of example.steps) {
      const t = step.transform === undefined ? undefined : TRANSFORMS[step.transform];
      if (t === undefined) continue;
      bound[step.id] = await t.prepare(t.params.parse(step.params ?? {}), { file: (p) => join(dir, p) });
    }
    const run = (id: string, inputs: Record<string, TensorValue>) =>
      Promise.resolve((bound[id] as TransformRun)(inputs));
    const client = async (png: Buffer, batched: boolean): Promise<string[]> => {
      const { image } = await run('decode', {
        bytes: { type: 'uint8', data: new Uint8Array(png), dims: [png.length] },
      });
      const { tensor } = await run('prepare', { image: image as TensorValue });
      const mask = await inferBinary(to, detName, 'x', tensor as TensorValue);
      const { boxes } = await run('boxes', { mask, image: image as TensorValue });
      const { crops } = await run('crop', { image: image as TensorValue, boxes: boxes as TensorValue });
      const c = crops as TensorValue;
      const n = c.dims[0] ?? 0;
      const per = (c.data as Float32Array).length / Math.max(n, 1);
      const texts: string[] = [];
      const items = batched ? (n === 0 ? [] : [[0, n]]) : Array.from({ length: n }, (_, i) => [i, i + 1]);
      for (const [from = 0, to2 = 0] of items) {
        const part: TensorValue = {
          type: 'float32',
          data: (c.data as Float32Array).subarray(from * per, to2 * per),
          dims: [to2 - from, ...c.dims.slice(1)],
        };
        const probs = await inferBinary(to, recName, 'x', part);
        texts.push(...((await run('ctc', { probs })).text?.data as string[]));
      }
      return texts;
    };
    const http = async (png: Buffer): Promise<string[]> => {
      const reply = await ok(to, { path: '/v2/models/ocr/infer', body: png, headers: { 'content-type': 'image/png' } });
      const body = JSON.parse(reply.body.toString('utf8')) as { outputs: { name: string; data: string[] }[] };
      return body.outputs.find((o) => o.name === 'text')?.data ?? [];
    };
    const subjects = {
      'pipeline (one request)': (p: Buffer) => http(p),
      'client, rec per crop': (p: Buffer) => client(p, false),
      'client, rec batched': (p: Buffer) => client(p, true),
    };
    const times: Record<string, number[]> = Object.fromEntries(Object.keys(subjects).map((k) => [k, []]));
    const pairs: Record<string, { got: string[]; want: readonly string[] }[]> = Object.fromEntries(
      Object.keys(subjects).map((k) => [k, []]),
    );
    const images = await Promise.all(Array.from({ length: IMAGES }, (_, i) => renderTextImage(i)));
    const first = images[0];
    if (first !== undefined) for (const f of Object.values(subjects)) await f(first.png); // warm-up
    let lines = 0;
    for (const [i, { png, lines: want }] of images.entries()) {
      lines += want.length;
      const order = Object.entries(subjects);
      if (i % 2 === 1) order.reverse();
      for (const [name, f] of order) {
        const t0 = performance.now();
        const got = await f(png);
        times[name]?.push(performance.now() - t0);
        pairs[name]?.push({ got, want });
      }
      process.stderr.write(`\rimage ${i + 1}/${IMAGES}`);
    }
    process.stderr.write('\n');
    const base = latencyStats(times['pipeline (one request)'] ?? []).p50;
    const rows = Object.keys(subjects).map((name) => {
      const s = latencyStats(times[name] ?? []);
      return {
        subject: name,
        p50_ms: s.p50,
        p90_ms: s.p90,
        vs_pipeline: s.p50 / base,
        accuracy: characterAccuracy(pairs[name] ?? []),
      };
    });
    const precision = int8Det === undefined ? undefined : await int8VsFp32(work, example, int8Det, images);
    if (JSON_OUT) {
      console.log(JSON.stringify({ images: IMAGES, lines, rows, precision }, null, 2));
      return;
    }
    console.log(`\n${IMAGES} rendered images, ${lines} lines; p50 per image, same server, interleaved\n`);
    console.log(
      '| subject | p50 ms | p90 ms | p50 vs pipeline | character accuracy |\n| --- | --- | --- | --- | --- |',
    );
    for (const r of rows)
      console.log(
        `| ${r.subject} | ${r.p50_ms.toFixed(0)} | ${r.p90_ms.toFixed(0)} | ${r.vs_pipeline.toFixed(2)}× | ${(r.accuracy * 100).toFixed(2)} % |`,
      );
    if (precision !== undefined) printPrecision(precision);
  } finally {
    server?.kill('SIGTERM');
    await rm(work, { recursive: true, force: true });
  }
}

/** The example with the detector at a fixed 640 × 640 input, fp32 (bundled) and int8 (the given artifact). */
async function int8VsFp32(
  work: string,
  example: Example,
  int8: string,
  images: readonly { png: Buffer; lines: readonly string[] }[],
) {
  const results = [];
  for (const precision of ['fp32', 'int8'] as const) {
    const source = JSON.parse(JSON.stringify(example)) as Example & {
      models: Record<string, { file?: string; artifact?: string }>;
    };
    const prepare = source.steps.find((s) => s.id === 'prepare');
    if (prepare !== undefined) prepare.params = { ...prepare.params, width: 640, height: 640 };
    const detSource = source.models.det as { file: string };
    source.models.det =
      precision === 'int8' ? { artifact: resolve(int8) } : { file: resolve(dirname(EXAMPLE), detSource.file) };
    source.models.rec = { file: resolve(dirname(EXAMPLE), (source.models.rec as { file: string }).file) };
    source.files = Object.fromEntries(Object.entries(source.files).map(([k, v]) => [k, resolve(dirname(EXAMPLE), v)]));
    const path = join(work, `ocr-${precision}.json`);
    await writeFile(path, JSON.stringify(source));
    await buildPipeline({ source: path, target: 'host', output: join(work, `ocr-${precision}`) });
    const pipeline = await openPipeline(join(work, `ocr-${precision}`));
    const pairs = [];
    const det: number[] = [];
    for (const { png, lines } of images) {
      const { outputs, timings } = await pipeline.run({
        image: { data: new Uint8Array(png), dims: [png.length], type: 'uint8' },
      });
      pairs.push({ got: outputs.text?.data as string[], want: lines });
      det.push(timings.det ?? 0);
    }
    await pipeline.release();
    results.push({ precision, accuracy: characterAccuracy(pairs), det_p50_ms: latencyStats(det).p50 });
  }
  return results;
}

await main();
