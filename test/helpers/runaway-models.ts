import { join } from 'node:path';
import { GraphBuilder, saveModel } from '../../compiler/onnx/index.js';

/**
 * Models whose running time or memory is set by an integer input, as in the ONNX backend tests that used to hang a
 * compile (test_tile_precomputed, Loop trip counts): a `Loop` whose trip count `M` is an input (ONNX Loop: "M: a
 * maximum trip-count for the loop"), and a `Tile` whose `repeats` is an input. Both are cheap on small values.
 */
export async function loopModel(dir: string): Promise<string> {
  const g = new GraphBuilder('runaway-loop');
  const m = g.input('M', 'int64', []);
  const v = g.input('v', 'float32', [4]);
  const body = g.subgraph('body');
  body.input('i', 'int64', []);
  const cond = body.input('cond_in', 'bool', []);
  const state = body.input('v_in', 'float32', [4]);
  body.output(body.node('Identity', [cond]), 'bool', []);
  body.output(body.node('Sin', [state]), 'float32', [4]);
  const [out] = g.nodeOutputs('Loop', [m, '', v], ['v_out'], { body: body.toGraph() });
  g.output(out ?? '', 'float32', [4]);
  const path = join(dir, 'loop.onnx');
  await saveModel(g.build({ opsets: { '': 17 } }), path);
  return path;
}

export async function tileModel(dir: string): Promise<string> {
  const g = new GraphBuilder('runaway-tile');
  const x = g.input('x', 'float32', [4]);
  const repeats = g.input('repeats', 'int64', [1]);
  g.output(g.nodeOutputs('Tile', [x, repeats], ['y'])[0] ?? '', 'float32', ['n']);
  const path = join(dir, 'tile.onnx');
  await saveModel(g.build({ opsets: { '': 17 } }), path);
  return path;
}
