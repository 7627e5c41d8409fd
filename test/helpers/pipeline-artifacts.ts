import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { buildPipeline } from '../../compiler/index.js';
import type { Manifest } from '../../runtime/artifact/index.js';
import { encodeNpy } from '../../runtime/tensor/npy.js';
import type { Keys } from './signed-artifacts.js';

/**
 * A signed pipeline artifact bundling `model` (a two-variant MLP artifact, mlpArtifact) twice, as models "a" and
 * "b", each step fed the pipeline's input; one label file of its own and one recorded test vector (loose tolerance:
 * about delivery, not accuracy). Built by the real `pipeline build`.
 */
export async function mlpPipeline(dir: string, version: string, keys: Keys, model: string): Promise<string> {
  const bundled = JSON.parse(await readFile(join(model, 'manifest.json'), 'utf8')) as Manifest;
  const [input] = bundled.inputs;
  const [output] = bundled.outputs;
  if (input === undefined || output === undefined) throw new Error(`${model} has no input or output`);
  const width = Number(input.shape[1]);
  await writeFile(join(dir, 'labels.txt'), 'zero\none\ntwo\n');
  const data = Float32Array.from({ length: width }, (_, i) => Math.sin(i) * 0.5);
  await writeFile(join(dir, 'x.npy'), encodeNpy({ dtype: 'float32', shape: [1, width], data }));
  const source = join(dir, `pipeline-${version}.json`);
  await writeFile(
    source,
    JSON.stringify({
      name: 'mlp-pipe',
      version,
      inputs: [{ name: 'x', dtype: 'float32', shape: [1, width] }],
      models: { a: { artifact: model }, b: { artifact: model } },
      files: { 'labels.txt': 'labels.txt' },
      steps: [
        { id: 'a', model: 'a', inputs: { [input.name]: 'inputs.x' } },
        { id: 'b', model: 'b', inputs: { [input.name]: 'inputs.x' } },
      ],
      outputs: { ya: `a.${output.name}`, yb: `b.${output.name}` },
      testVectors: { cases: [{ x: 'x.npy' }], tolerance: { atol: 1, rtol: 1 } },
    }),
  );
  const output_ = join(dir, `mlp-pipe-${version}`);
  await buildPipeline({ source, target: 'x86_64:avx512-vnni', output: output_, signKey: keys.privateKeyPem });
  return output_;
}
