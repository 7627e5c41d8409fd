import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import {
  GraphBuilder,
  asOnnxModel,
  attr,
  encodeModel,
  loadModel,
  opHistogram,
  opsetVersion,
  type OnnxModel,
} from '../../../compiler/onnx/index.js';
import { upgradeOpset } from '../../../compiler/passes/upgrade-opset.js';
import { isOutpostError } from '../../../runtime/errors.js';
import { tmpDir } from '../../helpers/tmp.js';
import { PADDLE, imageLike, passContext, uniform } from './helpers.js';

type Feeds = Record<string, ort.Tensor>;

async function outputs(model: Uint8Array, feeds: Feeds): Promise<Float32Array[]> {
  const session = await ort.InferenceSession.create(model, { logSeverityLevel: 3 });
  try {
    const out = await session.run(feeds);
    return session.outputNames.map((n) => out[n]?.data as Float32Array);
  } finally {
    await session.release();
  }
}

/** Upgrades a copy to opset 13 and checks the outputs stay bit-identical on `feeds`. */
async function upgradeKeepsOutputs(model: OnnxModel, feeds: Feeds): Promise<OnnxModel> {
  const before = encodeModel(model);
  const upgraded = await upgradeOpset(model, passContext(await tmpDir()), { to: 13 });
  expect(opsetVersion(upgraded.proto, '')).toBe(13);
  expect(Number(upgraded.proto.irVersion)).toBeGreaterThanOrEqual(7);
  const [a, b] = await Promise.all([outputs(before, feeds), outputs(encodeModel(upgraded), feeds)]);
  expect(b.length).toBe(a.length);
  a.forEach((data, i) => {
    expect(Buffer.from((b[i] as Float32Array).buffer).equals(Buffer.from(data.buffer))).toBe(true);
  });
  return upgraded;
}

function image(dims: [number, number, number, number], seed = 1): Feeds {
  return { x: new ort.Tensor('float32', imageLike(dims, seed), dims) };
}

describe('upgradeOpset', () => {
  it('upgrades the PaddleOCR classifier (opset 9) to 13 with identical outputs', async () => {
    const model = await upgradeKeepsOutputs(await loadModel(PADDLE.cls), image([2, 3, 48, 192]));
    // Clip's min/max became inputs; the final Softmax (axis 1 of a rank-2 value) kept its meaning without a rewrite.
    expect(opHistogram(model.proto).get('Flatten')).toBeUndefined();
  });

  it('upgrades the PaddleOCR recogniser (opset 9, Squeeze/Slice/Softmax/ReduceMean) with identical outputs', async () => {
    await upgradeKeepsOutputs(await loadModel(PADDLE.rec), image([1, 3, 48, 160]));
  });

  it('upgrades the PaddleOCR detector (opset 11, Resize/Clip inputs) with identical outputs', async () => {
    await upgradeKeepsOutputs(await loadModel(PADDLE.det), image([1, 3, 64, 64]));
  });

  it('rewrites opset-9 attributes into inputs and keeps Softmax coercion semantics when the rank is unknown', async () => {
    const g = new GraphBuilder('old');
    const x = g.input('x', 'float32', ['n', 4, 6]);
    const shape = g.input('shape', 'int64', [3]);
    let h = g.node('Clip', [x], { min: attr.float(-0.5), max: attr.float(0.75) });
    h = g.node('Slice', [h], { axes: [2], starts: [1], ends: [5] });
    h = g.node('Squeeze', [g.node('Unsqueeze', [h], { axes: [0] })], { axes: [0] });
    g.output(g.node('Softmax', [h], { axis: 2 }), 'float32', ['n', 4, 4]);
    // Rank unknown behind a Reshape to a runtime shape: the old "flatten from axis 1" meaning must be spelled out.
    g.output(g.node('Softmax', [g.node('Reshape', [h, shape])], { axis: 1 }), 'float32');
    const model = asOnnxModel(g.build({ opsets: { '': 9 } }));
    const upgraded = await upgradeKeepsOutputs(model, {
      x: new ort.Tensor('float32', uniform(2 * 4 * 6, 3, 2), [2, 4, 6]),
      shape: new ort.Tensor('int64', BigInt64Array.of(2n, 4n, 4n), [3]),
    });
    const ops = opHistogram(upgraded.proto);
    expect(ops.get('Flatten')).toBe(1);
    expect(ops.get('Softmax')).toBe(2);
  });

  it('changes nothing when the model is already at the target opset', async () => {
    const g = new GraphBuilder('new');
    g.output(g.node('Relu', [g.input('x', 'float32', [2])]), 'float32', [2]);
    const model = asOnnxModel(g.build({ opsets: { '': 13 } }));
    const before = encodeModel(model);
    await upgradeOpset(model, passContext(await tmpDir()), { to: 11 });
    expect(encodeModel(model)).toEqual(before);
  });

  it('refuses, naming the nodes, ops it cannot convert, and edits nothing', async () => {
    const g = new GraphBuilder('legacy');
    const x = g.input('x', 'float32', [1, 1, 2, 2]);
    const up = g.node('Upsample', [x, g.initializer('scales', Float32Array.of(1, 1, 2, 2), [4])], {}, { name: 'up' });
    g.output(g.node('MysteryOp', [up], {}, { name: 'mystery' }), 'float32');
    const model = asOnnxModel(g.build({ opsets: { '': 9 } }));
    const before = encodeModel(model);
    let caught: unknown;
    try {
      await upgradeOpset(model, passContext(await tmpDir()), { to: 13 });
    } catch (error) {
      caught = error;
    }
    expect(isOutpostError(caught, 'OPSET_UPGRADE_FAILED')).toBe(true);
    const message = (caught as Error).message;
    expect(message).toContain('"up" (Upsample)');
    expect(message).toContain('"mystery" (MysteryOp): not in the opset upgrade table');
    expect(encodeModel(model)).toEqual(before);
  });
});
