/**
 * Compile time and peak memory for a large model, the README's "large model" row:
 *
 *   npx tsx bench/compiler/compile-large.ts [--size 1024] [--width 40] [--images 4] [--target host] [--precision int8]
 *                                           [--cli dist/cli/main.js] [--json]
 *
 * Builds the fp16-exported segmentation net (models/segmentation.ts: 1×3×1024×1024 in, ≈24 MB of float16 weights),
 * renders `--images` calibration pages (text-pages.ts, float16 .npy), runs `outpost compile` on it in a child
 * process and samples the resident memory of that process and every process it starts (the evaluator) every
 * 100 ms: the peak of the sum is the machine's cost. `--cli` runs another build (e.g. an older checkout's) the same
 * way, for a before/after pair.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { saveModel } from '../../compiler/onnx/index.js';
import { buildSegmentationFp16 } from '../../models/segmentation.js';
import { writeTextPages } from './text-pages.js';

const { values } = parseArgs({
  options: {
    size: { type: 'string', default: '1024' },
    width: { type: 'string', default: '48' },
    images: { type: 'string', default: '4' },
    target: { type: 'string', default: 'host' },
    precision: { type: 'string', default: 'int8' },
    cli: { type: 'string' },
    json: { type: 'boolean', default: false },
  },
});

const SAMPLE_MS = 100;
const size = Number(values.size);

/** Resident bytes of `pid` and all its descendants (Linux /proc). */
async function treeRss(pid: number): Promise<{ total: number; largest: number }> {
  const children = new Map<number, number[]>();
  const rss = new Map<number, number>();
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const status = await readFile(`/proc/${entry}/status`, 'utf8').catch(() => '');
    const ppid = Number(/^PPid:\s+(\d+)/m.exec(status)?.[1] ?? -1);
    const kb = Number(/^VmRSS:\s+(\d+)/m.exec(status)?.[1] ?? 0);
    rss.set(Number(entry), kb * 1024);
    children.set(ppid, [...(children.get(ppid) ?? []), Number(entry)]);
  }
  let total = 0;
  let largest = 0;
  const stack = [pid];
  while (stack.length > 0) {
    const p = stack.pop() ?? 0;
    const r = rss.get(p) ?? 0;
    total += r;
    largest = Math.max(largest, r);
    stack.push(...(children.get(p) ?? []));
  }
  return { total, largest };
}

const dir = await mkdtemp(join(tmpdir(), 'outpost-bench-large-'));
try {
  const model = join(dir, 'seg-fp16.onnx');
  await saveModel(buildSegmentationFp16({ size, width: Number(values.width) }), model);
  const pages = await writeTextPages(join(dir, 'pages'), Number(values.images), size, 'float16');
  const entry = values.cli ?? join(import.meta.dirname, '..', '..', 'cli', 'main.ts');
  const cli = entry.endsWith('.ts') ? ['--import', 'tsx', entry] : [entry];
  const args = [
    ...cli,
    'compile',
    model,
    '--target',
    values.target,
    '--precision',
    values.precision,
    '--calibration',
    pages,
    '-o',
    join(dir, 'artifact'),
    '--json',
  ];
  const started = performance.now();
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  // The compile's progress lines (stderr is a pipe: timestamped lines) say which phase the memory belongs to.
  let stage = 'load';
  child.stderr.on('data', (c: Buffer) => {
    process.stderr.write(c);
    for (const m of c.toString().matchAll(/compile: (.+?) \d+\/\d+/g)) stage = m[1] ?? stage;
  });
  let peak = { total: 0, largest: 0 };
  const byStage = new Map<string, number>();
  const timer = setInterval(() => {
    const now = stage;
    void treeRss(child.pid ?? 0).then((r) => {
      peak = { total: Math.max(peak.total, r.total), largest: Math.max(peak.largest, r.largest) };
      byStage.set(now, Math.max(byStage.get(now) ?? 0, r.total));
    });
  }, SAMPLE_MS);
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  clearInterval(timer);
  const seconds = (performance.now() - started) / 1000;
  const report =
    code === 0
      ? (JSON.parse(stdout) as { variants: { id: string; bytes: number; accuracy?: { cosine: number } }[] })
      : undefined;
  const row = {
    model: `segmentation fp16, 1×3×${size}×${size}`,
    model_bytes: (await stat(model)).size,
    target: values.target,
    precision: values.precision,
    images: Number(values.images),
    exit: code,
    seconds,
    peak_rss_mb: peak.total / 2 ** 20,
    peak_single_process_mb: peak.largest / 2 ** 20,
    peak_rss_mb_by_phase: Object.fromEntries([...byStage].map(([k, v]) => [k, Math.round(v / 2 ** 20)])),
    variants: report?.variants.map((v) => ({ id: v.id, bytes: v.bytes, cosine: v.accuracy?.cosine })),
  };
  if (values.json) console.log(JSON.stringify(row, null, 2));
  else {
    console.log(`peak RSS by phase (MiB): ${JSON.stringify(row.peak_rss_mb_by_phase)}\n`);
    console.log(
      `| model | weights | target | calibration | compile | peak RSS (all processes) | largest process | variants |`,
    );
    console.log(`| --- | --- | --- | --- | --- | --- | --- | --- |`);
    console.log(
      `| ${row.model} | ${(row.model_bytes / 2 ** 20).toFixed(1)} MiB | ${row.target} ${row.precision} | ${row.images} images | ${seconds.toFixed(0)} s${code === 0 ? '' : ` (exit ${code})`} | ${row.peak_rss_mb.toFixed(0)} MiB | ${row.peak_single_process_mb.toFixed(0)} MiB | ${(row.variants ?? []).map((v) => `${v.id} ${(v.bytes / 2 ** 20).toFixed(1)} MiB cos ${v.cosine?.toFixed(4) ?? '–'}`).join(', ')} |`,
    );
  }
} finally {
  await rm(dir, { recursive: true, force: true });
}
