import { join } from 'node:path';
import { GraphBuilder, saveModel } from '../../compiler/onnx/index.js';

/**
 * Models whose outputs hold NaN and Infinity on ordinary inputs (ONNX operator spec: Log of a negative number is
 * NaN, of 0 is −Infinity; Sqrt of a negative number is NaN), and a twin that answers a number at those places.
 * x [2, 4] float → y [2, 4].
 */
export type NanModel = 'log' | 'sqrt' | 'log-abs';

export async function nanModel(dir: string, kind: NanModel): Promise<string> {
  const g = new GraphBuilder(`nan-${kind}`);
  const x = g.input('x', 'float32', [2, 4]);
  const y =
    kind === 'log'
      ? g.node('Log', [x])
      : kind === 'sqrt'
        ? g.node('Sqrt', [x])
        : g.node('Log', [g.node('Add', [g.node('Abs', [x]), g.initializer('one', new Float32Array([1]), [])])]);
  g.output(g.nodeOutputs('Identity', [y], ['y'])[0] ?? '', 'float32', [2, 4]);
  const path = join(dir, `${kind}.onnx`);
  await saveModel(g.build({ opsets: { '': 17 } }), path);
  return path;
}

/** Inputs with negatives (NaN out of Log and Sqrt) and a zero (−Infinity out of Log). */
export const NAN_INPUT = Object.freeze({
  data: Float32Array.from([1, -1, 0, 2, 4, -3, 0.5, 9]),
  dims: [2, 4],
});
