/**
 * The compiler's numbers in README.md ("Compiler"):  npx tsx bench/compiler/compile.ts [--json]
 * For each model: compile for this CPU's profile (cross-compile mode, so every variant ships), then in one process
 * compare the int8 variant against the fp32-optimised variant: size, native p50 (interleaved), and accuracy from the
 * compile report. Compile time is wall time for the whole `compile()`.
 */
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { compile } from '../../compiler/compile.js';
import { detectHost } from '../../compiler/targets/index.js';
import { benchmark } from '../../runtime/tuning/harness.js';
import { buildSamples } from '../../models/build.js';
import { writeTextLines } from './text-lines.js';
import { writeTextPages } from './text-pages.js';

const { values } = parseArgs({
  options: { json: { type: 'boolean', default: false }, iterations: { type: 'string', default: '400' } },
});
const assets = join(import.meta.dirname, '..', '..', 'node_modules', '@gutenye', 'ocr-models', 'assets');
const dir = await mkdtemp(join(tmpdir(), 'outpost-bench-compile-'));
const target = detectHost().profile.key;

interface Row {
  model: string;
  fp32_bytes: number;
  int8_bytes: number;
  size_ratio: number;
  fp32_p50_ms: number;
  int8_p50_ms: number;
  latency_ratio: number;
  int8_variant: string;
  cosine: number;
  top1?: number;
  float_nodes: number;
  compile_s: number;
  calibration: string;
}

try {
  const samples = await buildSamples(join(dir, 'samples'));
  const lines192 = await writeTextLines(join(dir, 'lines192'), 40, 192, 48);
  const lines320 = await writeTextLines(join(dir, 'lines320'), 40, 320, 48);
  const pages = await writeTextPages(join(dir, 'pages'), 16, 640);
  const paddle = 'mean=0.5:0.5:0.5,std=0.5:0.5:0.5';
  const cases = [
    { label: 'sample CNN', model: samples.cnn, calibration: 'synthetic' },
    {
      label: 'PaddleOCR cls (MobileNetV3)',
      model: join(assets, 'ch_ppocr_mobile_v2.0_cls_infer.onnx'),
      calibration: lines192,
      shape: [1, 3, 48, 192],
      preprocess: `size=192x48,${paddle}`,
    },
    {
      label: 'PaddleOCR rec (SVTR, 10 MB)',
      model: join(assets, 'ch_PP-OCRv4_rec_infer.onnx'),
      calibration: lines320,
      shape: [1, 3, 48, 320],
      preprocess: `size=320x48,${paddle}`,
    },
    {
      label: 'PaddleOCR det v4 (640², 4.7 MB)',
      model: join(assets, 'ch_PP-OCRv4_det_infer.onnx'),
      calibration: pages,
      shape: [1, 3, 640, 640],
    },
    {
      label: 'openWakeWord head (dense)',
      model: join(import.meta.dirname, '..', '..', 'node_modules', 'openwakeword-js', 'models', 'hello_deepa.onnx'),
      calibration: 'synthetic',
    },
  ];
  const rows: Row[] = [];
  for (const c of cases) {
    const out = join(dir, `${rows.length}`);
    const started = performance.now();
    const report = await compile({
      model: c.model,
      target,
      output: out,
      calibration: c.calibration,
      ...(c.shape === undefined ? {} : { inputShapes: { x: c.shape } }),
      ...(c.preprocess === undefined ? {} : { preprocess: c.preprocess }),
      ortFormat: false,
    });
    const compileS = (performance.now() - started) / 1000;
    const int8 = report.variants.find((v) => v.precision === 'int8' || v.precision === 'mixed');
    const fp32 = report.variants.find((v) => v.precision === 'fp32');
    if (int8 === undefined || fp32 === undefined) {
      console.error(`${c.label}: no int8 variant shipped (${report.rejected.map((r) => r.reason).join('; ')})`);
      continue;
    }
    // Both variants through the bench harness in one process: p50 of each, interleaved rounds.
    const p50 = async (variant: string) => {
      const r = await benchmark(out, {
        backends: ['native'],
        warmup: 30,
        iterations: Number(values.iterations),
        concurrency: 1,
        rounds: 10,
        variant,
        threads: 2,
      });
      return r.results.find((x) => x.subject === 'outpost')?.p50_ms ?? NaN;
    };
    const pFp32a = await p50(fp32.id);
    const pInt8a = await p50(int8.id);
    const pInt8b = await p50(int8.id);
    const pFp32b = await p50(fp32.id);
    const [fp32P50, int8P50] = [(pFp32a + pFp32b) / 2, (pInt8a + pInt8b) / 2];
    rows.push({
      model: c.label,
      fp32_bytes: fp32.bytes,
      int8_bytes: int8.bytes,
      size_ratio: int8.bytes / fp32.bytes,
      fp32_p50_ms: fp32P50,
      int8_p50_ms: int8P50,
      latency_ratio: int8P50 / fp32P50,
      int8_variant: int8.id,
      cosine: int8.accuracy?.cosine ?? NaN,
      ...(int8.accuracy?.top1_agreement === undefined ? {} : { top1: int8.accuracy.top1_agreement }),
      float_nodes: int8.excluded_nodes.length,
      compile_s: compileS,
      calibration: `${report.calibration.samples} ${report.calibration.synthetic ? 'synthetic' : 'images'}`,
    });
    await stat(out);
  }
  if (values.json) console.log(JSON.stringify({ target, rows }, null, 2));
  else {
    console.log(`target ${target} (this host), int8 vs fp32-optimised, native, 2 threads\n`);
    console.log(
      '| model | fp32 size | int8 size | ratio | fp32 p50 ms | int8 p50 ms | ratio | int8 cosine | top-1 | float nodes | compile s | calibration |',
    );
    console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |');
    for (const r of rows) {
      console.log(
        `| ${r.model} | ${(r.fp32_bytes / 1024).toFixed(0)} KiB | ${(r.int8_bytes / 1024).toFixed(0)} KiB | ${r.size_ratio.toFixed(3)} | ${r.fp32_p50_ms.toFixed(3)} | ${r.int8_p50_ms.toFixed(3)} | ${r.latency_ratio.toFixed(2)} | ${r.cosine.toFixed(4)} | ${r.top1 === undefined ? '' : (r.top1 * 100).toFixed(1) + '%'} | ${r.float_nodes} (${r.int8_variant}) | ${r.compile_s.toFixed(1)} | ${r.calibration} |`,
      );
    }
  }
} finally {
  await rm(dir, { recursive: true, force: true });
}
