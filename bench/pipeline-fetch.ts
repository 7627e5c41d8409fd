/**
 * Bytes a device fetches for the OCR pipeline whose detector has two variants (README.md, "Device agent"; docs/
 * pipelines.md, "Deploying a pipeline"):  npx tsx bench/pipeline-fetch.ts [--json]
 * examples/ocr with its detector compiled here with `precision: auto` (fp32 + int8, 640 × 640, calibrated on 5
 * rendered pages; image-tensor fixed at 640 × 640), its recogniser bundled as it is (one variant). Real Mosquitto on
 * loopback (the test harness: mTLS, ACL), the agent as a child process, the fleet in this process. Deployed in the
 * files layout (the delivery index, the pipeline's own files, one variant of each bundled model: device-agent/
 * fetch-choice.ts) and, as the baseline in the same run, in the archive layout (one .tar.gz: every variant,
 * gzip-compressed). Both run the self-test (the recorded sample page) and serve. `before_every_file_bytes` is what the files layout fetched for a pipeline before (every file, the
 * same index), derived from the same run.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { buildPipeline, compile } from '../compiler/index.js';
import type { Manifest } from '../runtime/artifact/index.js';
import { startBroker } from '../test/helpers/broker.js';
import { suiteTmpDir } from '../test/helpers/tmp.js';
import { signingKeys } from '../test/helpers/signed-artifacts.js';
import { writeTextPages } from './compiler/text-pages.js';
import { printKeyValues } from './key-values.js';
import { deployEachLayout, LAYOUTS } from './layout-deploy.js';

const { values } = parseArgs({ options: { json: { type: 'boolean', default: false } } });
const EXAMPLE = resolve(dirname(fileURLToPath(import.meta.url)), '..', 'examples', 'ocr', 'pipeline.json');

interface Source {
  models: Record<string, { file?: string; artifact?: string }>;
  files: Record<string, string>;
  steps: { id: string; params?: Record<string, unknown> }[];
  testVectors?: { cases: Record<string, string>[] };
}

const { dir, dispose } = await suiteTmpDir('outpost-bench-pipeline-fetch-');
const broker = await startBroker();
const results: Record<string, number | string> = { broker: broker.kind };
try {
  const keys = await signingKeys(dir, 'bench');
  const base = dirname(EXAMPLE);
  const source = JSON.parse(await readFile(EXAMPLE, 'utf8')) as Source;
  process.stderr.write('compiling the detector (fp32 + int8, 640 × 640)…\n');
  const det = join(dir, 'det');
  await compile({
    model: resolve(base, source.models.det?.file ?? ''),
    target: 'host',
    precision: 'auto',
    inputShapes: { x: [1, 3, 640, 640] },
    calibration: await writeTextPages(join(dir, 'calibration'), 5, 640),
    allowAccuracyLoss: true,
    output: det,
  });
  source.models.det = { artifact: det };
  source.models.rec = { file: resolve(base, source.models.rec?.file ?? '') };
  source.files = Object.fromEntries(Object.entries(source.files).map(([k, v]) => [k, resolve(base, v)]));
  const prepare = source.steps.find((s) => s.id === 'prepare');
  if (prepare !== undefined) prepare.params = { ...prepare.params, width: 640, height: 640 };
  if (source.testVectors !== undefined) {
    source.testVectors.cases = source.testVectors.cases.map((c) =>
      Object.fromEntries(Object.entries(c).map(([k, v]) => [k, resolve(base, v)])),
    );
  }
  const sourcePath = join(dir, 'ocr.json');
  await writeFile(sourcePath, JSON.stringify(source));
  process.stderr.write('building the pipeline…\n');
  const artifact = join(dir, 'ocr');
  await buildPipeline({ source: sourcePath, target: 'host', output: artifact, signKey: keys.privateKeyPem });

  const manifest = JSON.parse(await readFile(join(artifact, 'manifest.json'), 'utf8')) as Manifest;
  const inner = JSON.parse(await readFile(join(artifact, 'models', 'det', 'manifest.json'), 'utf8')) as Manifest;
  const ranked = [...inner.variants].sort((a, b) => a.rank - b.rank);
  const chosen = ranked[0];
  if (chosen === undefined || ranked.length < 2)
    throw new Error(`expected a two-variant detector: ${JSON.stringify(inner.variants.map((v) => v.id))}`);
  const sizeOf = (path: string): number => manifest.files[path]?.bytes ?? 0;
  const others = ranked.slice(1).map((v) => `models/det/${v.file}`);
  const all = Object.keys(manifest.files).reduce((sum, p) => sum + sizeOf(p), 0);
  results.det_variants = ranked.map((v) => `${v.id} ${v.bytes}`).join(', ');
  results.det_chosen_variant = chosen.id;
  results.pipeline_file_bytes = all;
  results.needed_file_bytes = all - others.reduce((sum, p) => sum + sizeOf(p), 0);
  const deployed = await deployEachLayout(dir, broker, artifact, keys.publicKeyPath);
  for (const layout of LAYOUTS) {
    const { status, bytesFetched } = deployed[layout];
    results[`${layout}_status`] = status;
    results[`${layout}_bytes_fetched`] = bytesFetched;
    results[`${layout}_vs_needed`] = bytesFetched / results.needed_file_bytes;
  }
  results.files_vs_archive = (results.files_bytes_fetched as number) / (results.archive_bytes_fetched as number);
  // Before (every file of a pipeline in the files layout): each file + the same delivery index. Derived, not deployed:
  // the index is what the files layout fetched beyond the needed files.
  const index = (results.files_bytes_fetched as number) - results.needed_file_bytes;
  results.before_every_file_bytes = all + index;
  results.files_vs_before = (results.files_bytes_fetched as number) / (all + index);
} finally {
  await broker.stop();
  await dispose();
}

printKeyValues(results, values.json);
