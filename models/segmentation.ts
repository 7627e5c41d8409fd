import type { ModelProto } from 'onnx-buf';
import { GraphBuilder, float32ToFloat16 } from '../compiler/onnx/index.js';
import { seededRandom } from './random.js';

/**
 * A background-removal-shaped segmentation net exported the way fp16 exporters write one (onnxconverter-common's
 * `convert_float_to_float16`, default `keep_io_types=False`): float16 image in, float16 mask out, float16 weights
 * and values throughout, and the ops that converter keeps in float32 (Resize is on its DEFAULT_OP_BLOCK_LIST)
 * wrapped in Casts. A U-Net: five stride-2 3×3 conv stages, a bottleneck, a side output of coarse logits, and a
 * decoder of nearest ×2 upsamplings concatenated with the skip connections, then a sigmoid mask at full size.
 *
 * Built from code with a fixed seed (He-initialised weights): deterministic bytes, meaningless answers. At the
 * default 1024² input and width 40 it holds ≈12 M parameters (≈ 24 MB in float16) and costs ≈ 13 G multiply-adds a
 * run; tests use a small size and width.
 */
export interface SegmentationOptions {
  /** Input height and width (a multiple of 32). */
  readonly size?: number; // default 1024
  /** Channels of the first stage; stage k has width × 2^k. */
  readonly width?: number; // default 48
  readonly seed?: number;
}

const FLOAT = 1; // onnx.proto TensorProto.DataType
const FLOAT16 = 10;

function heNormal(random: () => number, count: number, fanIn: number): Float32Array {
  const scale = Math.sqrt(2 / fanIn);
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) {
    const u = Math.max(random(), 1e-12);
    out[i] = Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * random()) * scale;
  }
  return out;
}

export function buildSegmentationFp16(options: SegmentationOptions = {}): ModelProto {
  const size = options.size ?? 1024;
  const width = options.width ?? 48;
  const random = seededRandom(options.seed ?? 2024);
  const g = new GraphBuilder('segmentation-fp16');
  const half = (name: string, values: Float32Array, dims: number[]) =>
    g.initializer(name, float32ToFloat16(values), dims, 'float16');
  let convs = 0;
  const conv = (x: string, cin: number, cout: number, k: number, stride: number, relu = true, gain = 1): string => {
    const id = convs++;
    const w = heNormal(random, cout * cin * k * k, cin * k * k).map((v) => v * gain);
    const b = Float32Array.from({ length: cout }, () => (random() - 0.5) * 0.02);
    const pad = (k - 1) / 2;
    const y = g.node(
      'Conv',
      [x, half(`conv${id}.weight`, w, [cout, cin, k, k]), half(`conv${id}.bias`, b, [cout])],
      { kernel_shape: [k, k], strides: [stride, stride], pads: [pad, pad, pad, pad] },
      { name: `conv${id}` },
    );
    return relu ? g.node('Relu', [y]) : y;
  };
  const scales = g.initializer('up.scales', Float32Array.from([1, 1, 2, 2]), [4]); // Resize scales: float32 always
  const up = (x: string): string => {
    const wide = g.node('Cast', [x], { to: FLOAT });
    const resized = g.node('Resize', [wide, '', scales], { mode: 'nearest' });
    return g.node('Cast', [resized], { to: FLOAT16 });
  };
  const image = g.input('image', 'float16', [1, 3, size, size]);
  const w = [width, width * 2, width * 4, width * 8, width * 16];
  const e1 = conv(image, 3, w[0] ?? 0, 3, 2);
  const e2 = conv(e1, w[0] ?? 0, w[1] ?? 0, 3, 2);
  const e3 = conv(e2, w[1] ?? 0, w[2] ?? 0, 3, 2);
  const e4 = conv(e3, w[2] ?? 0, w[3] ?? 0, 3, 2);
  const e5 = conv(e4, w[3] ?? 0, w[4] ?? 0, 3, 2);
  const b = conv(conv(e5, w[4] ?? 0, w[4] ?? 0, 3, 1), w[4] ?? 0, w[4] ?? 0, 3, 1);
  const side = conv(b, w[4] ?? 0, 1, 1, 1, false, 0.5);
  const decode = (low: string, skip: string, cin: number, cout: number) =>
    conv(g.node('Concat', [up(low), skip], { axis: 1 }), cin, cout, 1, 1);
  const d4 = decode(b, e4, (w[4] ?? 0) + (w[3] ?? 0), w[3] ?? 0);
  const d3 = decode(d4, e3, (w[3] ?? 0) + (w[2] ?? 0), w[2] ?? 0);
  const d2 = decode(d3, e2, (w[2] ?? 0) + (w[1] ?? 0), w[1] ?? 0);
  const d1 = decode(d2, e1, (w[1] ?? 0) + (w[0] ?? 0), w[0] ?? 0);
  const logits = conv(up(d1), w[0] ?? 0, 1, 3, 1, false, 0.5);
  g.output(g.nodeOutputs('Sigmoid', [logits], ['mask'])[0] ?? '', 'float16', [1, 1, size, size]);
  g.output(g.nodeOutputs('Identity', [side], ['side'])[0] ?? '', 'float16', [1, 1, size / 32, size / 32]);
  return g.build({ opsets: { '': 17 } });
}
