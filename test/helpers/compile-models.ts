import { join } from 'node:path';
import { GraphBuilder, saveModel } from '../../compiler/onnx/index.js';
import { buildCnn } from '../../models/samples.js';
import { seededRandom } from '../../runtime/tensor/tensor.js';

export async function sampleCnn(dir: string): Promise<string> {
  const path = join(dir, 'cnn.onnx');
  await saveModel(buildCnn().proto, path);
  return path;
}

/**
 * An MLP with one deliberately quantisation-sensitive layer: in "sensitive" every output column has one huge weight
 * on an input that is always zero (its ReLU never fires), so the huge weight never matters in float but sets the
 * int8 scale so coarsely that every real weight of the column rounds to nothing. The other layers quantise cleanly.
 */
export async function sensitiveMlp(dir: string): Promise<{ path: string; sensitive: string }> {
  const random = seededRandom(11);
  const normal = (n: number, scale: number) => Float32Array.from({ length: n }, () => (random() * 2 - 1) * scale);
  const g = new GraphBuilder('sensitive-mlp');
  const x = g.input('x', 'float32', ['batch', 32]);
  const wA = normal(32 * 64, 0.3);
  for (let i = 0; i < 32; i++) wA[i * 64] = 0; // column 0 of layer A: always 0 …
  const bA = normal(64, 0.1);
  bA[0] = -1; // … and pushed below zero, so ReLU keeps it at 0
  const a = g.node('Relu', [
    g.node(
      'Gemm',
      [x, g.initializer('a.weight', wA, [32, 64]), g.initializer('a.bias', bA, [64])],
      {},
      { name: 'dense_a' },
    ),
  ]);
  const wB = normal(64 * 64, 0.3);
  for (let j = 0; j < 64; j++) wB[j] = 100; // row 0 (the dead input) of every column of layer B
  const b = g.node('Relu', [
    g.node(
      'Gemm',
      [a, g.initializer('b.weight', wB, [64, 64]), g.initializer('b.bias', normal(64, 0.1), [64])],
      {},
      { name: 'sensitive' },
    ),
  ]);
  const c = g.node(
    'Gemm',
    [b, g.initializer('c.weight', normal(64 * 10, 0.3), [64, 10]), g.initializer('c.bias', normal(10, 0.1), [10])],
    {},
    { name: 'dense_c' },
  );
  g.output(c, 'float32', ['batch', 10]);
  const path = join(dir, 'sensitive.onnx');
  await saveModel(g.build({ opsets: { '': 17 } }), path);
  return { path, sensitive: 'sensitive' };
}
