import { create } from '@bufbuild/protobuf';
import { GraphProtoSchema, NodeProtoSchema, type GraphProto, type NodeProto, type TensorProto } from 'onnx-buf';
import {
  NameGenerator,
  attr,
  makeAttribute,
  makeTensor,
  makeValueInfo,
  nodeReads,
  readTensor,
  replaceUses,
  setTensorData,
  sortTopologically,
  tensorToArray,
  type OnnxModel,
} from '../onnx/index.js';
import { FP16_STEERING_ATTRIBUTE, float32Outputs, planFloat16, type Fp16Options, type Fp16Plan } from './fp16-plan.js';
import { halfBits, type HalfClamps } from './fp16-round.js';
import type { Pass, PassContext } from './types.js';

/**
 * float32 → float16 for GPU targets (onnxconverter-common's convert_float_to_float16 with keep_io_types=True, done
 * on our protos): initializers and Constant values become FLOAT16, converted nodes compute in fp16, nodes on the
 * block list (fp16-plan.ts) stay float32 with Casts around them, and the graph's inputs and outputs keep float32
 * (Casts at the edges), so callers feed and read what they did before.
 */
const FLOAT = 1; // onnx.proto TensorProto.DataType
const FLOAT16 = 10;

export interface Fp16Result {
  readonly model: OnnxModel;
  readonly convertedNodes: number;
  readonly castsAdded: number;
  readonly clamps: HalfClamps;
}

/** Where each float32 value is available in which precision, creating Casts on demand. */
class Versions {
  readonly casts: NodeProto[] = [];
  private readonly available = new Map<string, { half?: string; full?: string }>();

  constructor(
    private readonly plan: Fp16Plan,
    private readonly names: NameGenerator,
  ) {}

  set(value: string, precision: 'half' | 'full', name: string): void {
    this.available.set(value, { ...this.available.get(value), [precision]: name });
  }

  /** The name holding `value` in `precision`: the value itself, or a Cast made once and shared by every reader. */
  get(value: string, precision: 'half' | 'full'): string {
    const have = this.available.get(value) ?? (this.plan.half.has(value) ? { half: value } : { full: value });
    const found = have[precision];
    if (found !== undefined) return found;
    const from = precision === 'half' ? have.full : have.half;
    const name = this.names.value(`${value}_${precision === 'half' ? 'fp16' : 'fp32'}`);
    this.casts.push(
      create(NodeProtoSchema, {
        opType: 'Cast',
        name: this.names.node(`Cast_${name}`),
        input: [from ?? value],
        output: [name],
        attribute: [makeAttribute('to', attr.int(precision === 'half' ? FLOAT16 : FLOAT))],
      }),
    );
    this.set(value, precision, name);
    const shape = this.plan.inferred.get(value)?.shape;
    this.plan.graph.valueInfo.push(makeValueInfo(name, precision === 'half' ? 'float16' : 'float32', shape));
    return name;
  }
}

async function convertTensor(model: OnnxModel, tensor: TensorProto, clamps: HalfClamps): Promise<void> {
  const { dtype, dims, data } = await readTensor(model, tensor);
  if (dtype !== 'float32') return;
  setTensorData(tensor, halfBits(data as Float32Array, clamps), dims, 'float16');
}

/** A converted node's attributes: FLOAT type selectors become FLOAT16, float tensors become fp16 tensors. */
function convertAttributes(node: NodeProto, clamps: HalfClamps): void {
  const steering = FP16_STEERING_ATTRIBUTE[node.opType];
  if (steering === undefined) return;
  for (const a of node.attribute) {
    if (a.name === steering && a.i === BigInt(FLOAT)) a.i = BigInt(FLOAT16);
    if (a.t !== undefined && a.t.dataType === FLOAT) {
      const value = tensorToArray(a.t);
      setTensorData(a.t, halfBits(value.data as Float32Array, clamps), value.dims, 'float16');
    }
  }
  if (node.opType === 'Constant') {
    // value_float(s) have no fp16 form: the same numbers as a FLOAT16 `value` tensor (Operators.md, Constant).
    const a = node.attribute.find((x) => x.name === 'value_float' || x.name === 'value_floats');
    if (a !== undefined) {
      const values = a.name === 'value_float' ? [a.f] : a.floats;
      const dims = a.name === 'value_float' ? [] : [values.length];
      const tensor = makeTensor('', halfBits(Float32Array.from(values), clamps), dims, 'float16');
      node.attribute = [makeAttribute('value', tensor)];
    }
  }
  if (node.opType === 'ConstantOfShape' && !node.attribute.some((a) => a.name === 'value')) {
    // Without `value` it fills float32 zeros (Operators.md, ConstantOfShape): say fp16 zero instead.
    node.attribute.push(makeAttribute('value', makeTensor('', new Uint16Array(1), [1], 'float16')));
  }
  if (
    (node.opType === 'RandomNormal' || node.opType === 'RandomUniform') &&
    !node.attribute.some((a) => a.name === 'dtype')
  ) {
    node.attribute.push(makeAttribute('dtype', attr.int(FLOAT16))); // their dtype defaults to FLOAT
  }
}

/** Points every read of float32 values by `node` (inputs, and outer names its subgraphs read) at `precision`. */
function rewireReads(node: NodeProto, plan: Fp16Plan, versions: Versions, precision: 'half' | 'full'): void {
  const isFloat = (n: string): boolean => plan.dtypeOf(n) === 'float32';
  // replaceUses on a graph holding just this node renames its inputs and, scope-aware, its subgraphs' reads.
  const only: GraphProto = create(GraphProtoSchema, { node: [node] });
  for (const name of nodeReads(node)) {
    if (!isFloat(name)) continue;
    const target = versions.get(name, precision);
    if (target !== name) replaceUses(only, name, target);
  }
}

export async function convertModelToFloat16(
  model: OnnxModel,
  context: PassContext,
  options: Fp16Options = {},
): Promise<Fp16Result> {
  const plan = await planFloat16(model, context.workDir, options);
  const { graph } = plan;
  const names = new NameGenerator(model.proto);
  const versions = new Versions(plan, names);
  const clamps: HalfClamps = { toSmallest: 0, toLargest: 0 };
  const isFloat = (n: string): boolean => plan.dtypeOf(n) === 'float32';

  // Graph outputs produced in fp16: the producer writes `<name>_fp16`, a Cast writes the float32 output itself.
  const outputs = new Set(graph.output.map((o) => o.name));
  for (const node of plan.converted) {
    for (const i of float32Outputs(node, isFloat)) {
      const name = node.output[i] as string;
      if (!outputs.has(name)) continue;
      const renamed = names.value(`${name}_fp16`);
      node.output[i] = renamed;
      versions.set(name, 'half', renamed);
      versions.set(name, 'full', name);
      versions.casts.push(
        create(NodeProtoSchema, {
          opType: 'Cast',
          name: names.node(`Cast_${name}`),
          input: [renamed],
          output: [name],
          attribute: [makeAttribute('to', attr.int(FLOAT))],
        }),
      );
      graph.valueInfo.push(makeValueInfo(renamed, 'float16', plan.inferred.get(name)?.shape));
    }
  }
  for (const node of graph.node) {
    if (plan.converted.has(node)) rewireReads(node, plan, versions, 'half');
    else if (nodeReads(node).some(isFloat)) rewireReads(node, plan, versions, 'full');
  }
  for (const node of plan.converted) convertAttributes(node, clamps);
  for (const tensor of graph.initializer) if (plan.half.has(tensor.name)) await convertTensor(model, tensor, clamps);
  for (const info of graph.valueInfo) {
    const t = info.type?.value;
    if (t?.case === 'tensorType' && t.value.elemType === FLOAT && plan.half.has(info.name) && !outputs.has(info.name)) {
      t.value.elemType = FLOAT16;
    }
  }
  graph.node.push(...versions.casts);
  sortTopologically(graph);

  for (const { node, reason } of plan.blocked) {
    context.report.excludedNodes.push({
      node: node.name || node.output.join(','),
      op: node.opType,
      reason: `fp16: ${reason}`,
    });
  }
  if (clamps.toSmallest + clamps.toLargest > 0) {
    context.report.warnings.push(
      `fp16: ${clamps.toSmallest} nonzero weights below fp16's smallest subnormal kept as ±2^-24, ${clamps.toLargest} beyond 65504 kept as ±65504 (instead of 0 and ±Inf)`,
    );
  }
  return { model, convertedNodes: plan.converted.size, castsAdded: versions.casts.length, clamps };
}

/** `(model, context) → model` computing in fp16, float32 at the edges (see `convertModelToFloat16` for counts). */
export const convertToFloat16: Pass<Fp16Options | undefined> = async (model, context, options) =>
  (await convertModelToFloat16(model, context, options)).model;
