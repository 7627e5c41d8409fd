/**
 * The response limit's figures in README.md ("Local serving"):  npx tsx bench/server/response-limit.ts [--query '?…']
 * One image body to an in-process server for a model with 12 large outputs (12 × [1, 3, 512, 512] FP32, ~38 MB of
 * tensors, ~174 MB as JSON): status, response size, time, and this process's peak RSS (VmHWM) before and after.
 * The peak is process-wide, so each query is its own run: the default answer (refused over the limit), then e.g.
 * `--query '?binary_data_output=true'` or `--query '?outputs=tile0'`.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import sharp from 'sharp';
import { GraphBuilder, saveModel } from '../../compiler/onnx/index.js';
import { writeArtifact, type ManifestDraft } from '../../runtime/artifact/index.js';
import { loadModel } from '../../runtime/model/load.js';
import { StaticRepository } from '../../runtime/server/serving/model-repository.js';
import { InferenceServer } from '../../runtime/server/http/server.js';
import { suiteTmpDir } from '../../test/helpers/tmp.js';

const OUTPUTS = 12;
const { values } = parseArgs({ options: { query: { type: 'string', default: '' } } });
const { dir, dispose } = await suiteTmpDir('outpost-bench-response-');

const g = new GraphBuilder('mosaic');
const image = g.input('image', 'float32', [1, 3, 128, 128]);
const repeats = g.initializer('repeats', BigInt64Array.from([1n, 1n, 4n, 4n]), [4]);
const outputs: ManifestDraft['outputs'] = [];
for (let i = 0; i < OUTPUTS; i++) {
  const scale = g.initializer(`scale${i}`, Float32Array.of(i + 1.1), []);
  const name = `tile${i}`;
  g.output(
    g.nodeOutputs('Tile', [g.node('Mul', [image, scale]), repeats], [name])[0] ?? '',
    'float32',
    [1, 3, 512, 512],
  );
  outputs.push({ name, dtype: 'float32', shape: [1, 3, 512, 512] });
}
await saveModel(g.build({ opsets: { '': 17 } }), join(dir, 'mosaic.onnx'));
const artifact = join(dir, 'mosaic');
await writeArtifact(artifact, {
  manifest: {
    name: 'mosaic',
    version: '1',
    target: { profile: 'any', arch: 'any' },
    inputs: [{ name: 'image', dtype: 'float32', shape: [1, 3, 128, 128] }],
    outputs,
    variants: [
      { id: 'fp32', file: 'variants/m.onnx', precision: 'fp32', format: 'onnx', backends: ['native'], rank: 1 },
    ],
    pipeline: { preprocess: { kind: 'image', input: 'image', width: 128, height: 128 } },
    producer: { outpost: 'bench' },
  },
  files: [{ path: 'variants/m.onnx', from: join(dir, 'mosaic.onnx') }],
});
const repository = new StaticRepository();
const model = await loadModel(artifact);
await repository.add(model);
const server = new InferenceServer({ repository, port: 0 });
const { url } = await server.listen();
const png = await sharp({ create: { width: 200, height: 150, channels: 3, background: { r: 10, g: 200, b: 90 } } })
  .png()
  .toBuffer();

const peakMb = () => Number(/VmHWM:\s+(\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? NaN) / 1024;
const before = peakMb();
const started = performance.now();
const reply = await fetch(`${url}/v2/models/mosaic/infer${values.query}`, {
  method: 'POST',
  body: png,
  headers: { 'content-type': 'image/png' },
});
const body = Buffer.from(await reply.arrayBuffer());
console.log(
  JSON.stringify({
    query: values.query,
    status: reply.status,
    responseMB: Number((body.length / 1e6).toFixed(1)),
    ms: Math.round(performance.now() - started),
    peakRssMB: { before: Math.round(before), after: Math.round(peakMb()) },
  }),
);
await server.close();
await repository.close();
await dispose();
