import { join } from 'node:path';
import { GraphBuilder, saveModel } from '../../../compiler/onnx/index.js';
import { buildMlp, OPSET } from '../../../models/samples.js';
import { loadModel } from '../../../runtime/model/load.js';
import type { Feeds, Model } from '../../../runtime/model/model.js';
import { seededRandom } from '../../../runtime/tensor/tensor.js';

/**
 * Real ONNX Runtime models for the scheduling suites, built from code and loaded through `loadModel`:
 * - `mlp`: the sample MLP, x [batch, 16] → logits [batch, 10] (batchable, fixed rows);
 * - `doubler`: x [batch, len] → y = 2x [batch, len] (batchable, rows of varying length);
 * - `fixed`: x [1, 16] → MatMul → [1, 4] (no batch axis: direct scheduling);
 * - `timeAxis`: x [T, 4] → Relu → [T, 4] (symbolic first axis that does not name a batch).
 */
export interface BatchModels {
  readonly mlp: Model;
  readonly doubler: Model;
  readonly fixed: Model;
  readonly timeAxis: Model;
  /** Loads the MLP again as a separate model (for tests that release it). */
  loadMlp(): Promise<Model>;
  release(): Promise<void>;
}

export async function loadBatchModels(dir: string): Promise<BatchModels> {
  const files = { mlp: join(dir, 'mlp.onnx'), doubler: join(dir, 'doubler.onnx') };
  await saveModel(buildMlp().proto, files.mlp);

  const d = new GraphBuilder('doubler');
  const two = d.initializer('two', Float32Array.of(2), []);
  d.output(d.node('Mul', [d.input('x', 'float32', ['batch', 'len']), two]), 'float32', ['batch', 'len']);
  await saveModel(d.build({ opsets: { '': OPSET } }), files.doubler);

  const f = new GraphBuilder('fixed');
  const w = f.initializer(
    'w',
    Float32Array.from({ length: 64 }, (_, i) => i / 64),
    [16, 4],
  );
  f.output(f.node('MatMul', [f.input('x', 'float32', [1, 16]), w]), 'float32', [1, 4]);
  await saveModel(f.build({ opsets: { '': OPSET } }), join(dir, 'fixed.onnx'));

  const t = new GraphBuilder('time');
  t.output(t.node('Relu', [t.input('x', 'float32', ['T', 4])]), 'float32', ['T', 4]);
  await saveModel(t.build({ opsets: { '': OPSET } }), join(dir, 'time.onnx'));

  const models = {
    mlp: await loadModel(files.mlp),
    doubler: await loadModel(files.doubler),
    fixed: await loadModel(join(dir, 'fixed.onnx')),
    timeAxis: await loadModel(join(dir, 'time.onnx')),
  };
  return {
    ...models,
    loadMlp: () => loadModel(files.mlp),
    release: async () => {
      for (const model of Object.values(models)) await model.release();
    },
  };
}

/** Feeds for the MLP: `rows` rows of seeded values in [-1, 1). */
export function mlpFeeds(rows: number, seed: number): Feeds {
  const random = seededRandom(seed);
  return { x: { data: Float32Array.from({ length: rows * 16 }, () => random() * 2 - 1), dims: [rows, 16] } };
}
