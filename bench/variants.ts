/**
 * Bytes fetched per device for a two-variant artifact (README.md, "Device agent"):  npx tsx bench/variants.ts [--json]
 * Real Mosquitto on loopback (the test harness: mTLS, ACL), the agent as a child process (from source: this bench
 * counts bytes, not time), the fleet in this process. An MLP (~8 MB of fp32 weights) compiled to int8 (rank 1) and
 * fp32; deployed in the files layout (the device fetches the delivery index, then only what it runs) and, as the
 * baseline in the same run, in the archive layout (one .tar.gz, every variant). Goal: files layout ≤ the chosen
 * variant's size + 5 %.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { compile } from '../compiler/compile.js';
import { GraphBuilder, saveModel } from '../compiler/onnx/index.js';
import type { Manifest } from '../runtime/artifact/index.js';
import { startBroker } from '../test/helpers/broker.js';
import { suiteTmpDir } from '../test/helpers/tmp.js';
import { signingKeys } from '../test/helpers/signed-artifacts.js';
import { printKeyValues } from './key-values.js';
import { deployEachLayout, LAYOUTS } from './layout-deploy.js';

const { values } = parseArgs({ options: { json: { type: 'boolean', default: false } } });
const IN = 1024; // MLP input width
const HIDDEN = 2048; // hidden width: IN × HIDDEN float32 weights ≈ 8.4 MB

const { dir, dispose } = await suiteTmpDir('outpost-bench-variants-');
const broker = await startBroker();
const results: Record<string, number | string> = { broker: broker.kind };
try {
  const keys = await signingKeys(dir, 'bench');
  const g = new GraphBuilder('mlp');
  const x = g.input('x', 'float32', [1, IN]);
  const w1 = g.initializer(
    'w1',
    Float32Array.from({ length: IN * HIDDEN }, (_, i) => Math.sin(i * 12.9898) * 0.05),
    [IN, HIDDEN],
  );
  const w2 = g.initializer(
    'w2',
    Float32Array.from({ length: HIDDEN * 10 }, (_, i) => Math.cos(i) * 0.05),
    [HIDDEN, 10],
  );
  g.output(g.node('MatMul', [g.node('Relu', [g.node('MatMul', [x, w1])]), w2]), 'float32', [1, 10]);
  const model = join(dir, 'mlp.onnx');
  await saveModel(g.build({ opsets: { '': 17 } }), model);
  const artifact = join(dir, 'mlp-artifact');
  await compile({
    model,
    target: 'x86_64:avx512-vnni',
    output: artifact,
    name: 'mlp',
    version: '1.0.0',
    signKey: keys.privateKeyPem,
    precision: 'auto',
    // The bench is about delivery, not accuracy: a loose budget keeps int8 (4× smaller) in the running on random
    // weights, so the device's rank-1 variant is the small one, as for the ResNet-18 (11 of 57 MiB).
    budget: { cosine: 0.9 },
    allowAccuracyLoss: true,
  });
  const manifest = JSON.parse(await readFile(join(artifact, 'manifest.json'), 'utf8')) as Manifest;
  const chosen = [...manifest.variants].sort((a, b) => a.rank - b.rank)[0];
  if (chosen === undefined || manifest.variants.length < 2) {
    throw new Error(`expected a two-variant artifact: ${JSON.stringify(manifest.report)}`);
  }
  results.variants = manifest.variants.map((v) => `${v.id} ${v.bytes}`).join(', ');
  results.chosen_variant = chosen.id;
  results.chosen_variant_bytes = chosen.bytes;
  results.artifact_file_bytes = Object.values(manifest.files).reduce((sum, f) => sum + f.bytes, 0);
  const deployed = await deployEachLayout(dir, broker, artifact, keys.publicKeyPath);
  for (const layout of LAYOUTS) {
    const { status, variant, bytesFetched } = deployed[layout];
    results[`${layout}_status`] = status;
    results[`${layout}_variant`] = variant;
    results[`${layout}_bytes_fetched`] = bytesFetched;
    results[`${layout}_vs_chosen_variant`] = bytesFetched / chosen.bytes;
  }
  results.files_vs_archive = (results.files_bytes_fetched as number) / (results.archive_bytes_fetched as number);
} finally {
  await broker.stop();
  await dispose();
}

printKeyValues(results, values.json);
