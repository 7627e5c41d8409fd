import { create } from '@bufbuild/protobuf';
import { NodeProtoSchema, type NodeProto } from 'onnx-buf';
import {
  NameGenerator,
  attr,
  makeAttribute,
  readTensor,
  setTensorData,
  sortTopologically,
  tensorToArray,
  type OnnxModel,
} from '../onnx/index.js';
import { float32Outputs, planFloat16, type Fp16Options } from './fp16-plan.js';
import { roundThroughHalf } from './fp16-round.js';
import type { PassContext } from './types.js';

/**
 * The fp16 model's numerics on a float32 graph, for judging a GPU variant on a CPU. ONNX Runtime's CPU EP runs an
 * fp16 model mostly in float32 (it wraps every node it has no fp16 kernel for in Casts; on x86 that is every compute
 * op), so running the fp16 model here understates its error. This model instead holds the weights the fp16 model
 * holds (rounded through fp16, with the same clamping) and rounds every value a converted node reads or writes
 * through fp16 (Cast to FLOAT16 and back), which is what fp16 storage does on the GPU; only the arithmetic inside an
 * op stays float32, as it mostly does on GPUs too (cuBLAS/cuDNN accumulate fp16 in float32). Same plan as the fp16
 * pass, so the same nodes are converted. Run it with graphOptimizationLevel 'disabled' or 'basic': both keep the
 * rounding Casts (ORT's Cast-chain elimination is opt-in).
 */
const FLOAT = 1;
const FLOAT16 = 10;

function cast(names: NameGenerator, input: string, output: string, to: number): NodeProto {
  return create(NodeProtoSchema, {
    opType: 'Cast',
    name: names.node(`Round_${output}`),
    input: [input],
    output: [output],
    attribute: [makeAttribute('to', attr.int(to))],
  });
}

export async function simulateFloat16(
  model: OnnxModel,
  context: PassContext,
  options: Fp16Options = {},
): Promise<OnnxModel> {
  const plan = await planFloat16(model, context.workDir, options);
  const { graph } = plan;
  const names = new NameGenerator(model.proto);
  const isFloat = (n: string): boolean => plan.dtypeOf(n) === 'float32';
  const added: NodeProto[] = [];
  const pair = (from: string, to: string): void => {
    const half = names.value(`${to}_fp16`);
    added.push(cast(names, from, half, FLOAT16), cast(names, half, to, FLOAT));
  };
  // Values converted nodes write: the producer writes `<v>_exact`, a rounding pair writes `v` for every reader.
  for (const node of plan.converted) {
    for (const i of float32Outputs(node, isFloat)) {
      const name = node.output[i] as string;
      const exact = names.value(`${name}_exact`);
      node.output[i] = exact;
      pair(exact, name);
    }
    for (const a of node.attribute) {
      if (a.t?.dataType !== FLOAT) continue;
      const value = tensorToArray(a.t);
      setTensorData(a.t, roundThroughHalf(value.data as Float32Array), value.dims, 'float32');
    }
  }
  for (const tensor of graph.initializer) {
    if (!plan.half.has(tensor.name)) continue;
    const { dims, data } = await readTensor(model, tensor);
    setTensorData(tensor, roundThroughHalf(data as Float32Array), dims, 'float32');
  }
  // Values converted nodes read but that stay float32 (graph inputs, blocked nodes' outputs): rounded on the way in.
  const rounded = new Map<string, string>();
  for (const node of plan.converted) {
    node.input.forEach((name, i) => {
      if (!isFloat(name) || plan.half.has(name)) return;
      let target = rounded.get(name);
      if (target === undefined) {
        target = names.value(`${name}_rounded`);
        pair(name, target);
        rounded.set(name, target);
      }
      node.input[i] = target;
    });
  }
  // value_info described the producers' outputs, which now carry other names; ORT re-derives what it needs.
  graph.valueInfo = [];
  graph.node.push(...added);
  sortTopologically(graph);
  return model;
}
