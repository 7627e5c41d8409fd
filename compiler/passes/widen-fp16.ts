import { create } from '@bufbuild/protobuf';
import { NodeProtoSchema, type GraphProto, type TypeProto } from 'onnx-buf';
import { logger } from '../../runtime/log.js';
import {
  NameGenerator,
  attr,
  float16ToFloat32,
  mainGraph,
  makeAttribute,
  makeValueInfo,
  modelGraphs,
  modelTensors,
  readTensor,
  replaceUses,
  setTensorData,
  type OnnxModel,
  type ValueInfoProto,
} from '../onnx/index.js';
import type { Pass } from './types.js';

/**
 * A model exported in float16 (fp16 weights and compute: onnxconverter-common's `convert_float_to_float16`, torch's
 * `.half()` export) widened to float32, so the compiler can optimise, quantise and grade it as any fp32 model and
 * keep an fp16 variant only where the target computes in fp16. Every float16 number is exactly representable in
 * float32, so the weights do not move; the arithmetic becomes float32, as ONNX Runtime's CPU EP does for most fp16
 * nodes anyway (InsertCastTransformer).
 *
 * - Tensors: FLOAT16 initializers (external data included), Constant/ConstantOfShape values and every other
 *   attribute tensor become FLOAT.
 * - Type selectors: `to` (Cast) and `dtype` (EyeLike, RandomNormal, …) naming FLOAT16 name FLOAT (CastLike follows
 *   its second input by itself).
 * - Types: value_info, and the inputs and outputs of subgraphs, declared FLOAT16 become FLOAT.
 * - The model's own interface is kept: a FLOAT16 graph input is still FLOAT16, read through a Cast to FLOAT; a
 *   FLOAT16 graph output is still FLOAT16, written through a Cast from the widened value. Callers see the same model.
 *
 * onnx.proto TensorProto.DataType: FLOAT = 1, FLOAT16 = 10.
 */
const log = logger('compiler.widen-fp16');

const FLOAT = 1;
const FLOAT16 = 10;
const TYPE_SELECTORS: ReadonlySet<string> = new Set(['to', 'dtype']);

export interface WidenResult {
  readonly model: OnnxModel;
  readonly tensors: number;
  readonly selectors: number;
  readonly types: number;
  /** Graph inputs and outputs kept FLOAT16 behind a Cast. */
  readonly edges: number;
}

function elemTypeOf(type: TypeProto | undefined): TypeProto['value'] | undefined {
  return type?.value;
}

/** Widens a FLOAT16 tensor type (also inside sequence/optional/map values); true when it changed. */
function widenType(type: TypeProto | undefined): boolean {
  const value = elemTypeOf(type);
  if (value === undefined) return false;
  switch (value.case) {
    case 'tensorType':
    case 'sparseTensorType':
      if (value.value.elemType !== FLOAT16) return false;
      value.value.elemType = FLOAT;
      return true;
    case 'sequenceType':
    case 'optionalType':
      return widenType(value.value.elemType);
    case 'mapType':
      return widenType(value.value.valueType);
    default:
      return false;
  }
}

function isHalfTensor(v: ValueInfoProto): boolean {
  return v.type?.value.case === 'tensorType' && v.type.value.value.elemType === FLOAT16;
}

function shapeOf(v: ValueInfoProto): (number | string | null)[] | undefined {
  if (v.type?.value.case !== 'tensorType') return undefined;
  return v.type.value.value.shape?.dim.map((d) =>
    d.value.case === 'dimValue' ? Number(d.value.value) : d.value.case === 'dimParam' ? d.value.value : null,
  );
}

/** FLOAT16 graph inputs and outputs keep their type behind a Cast; the graph between them computes in float32. */
function keepInterface(graph: GraphProto, names: NameGenerator): number {
  let edges = 0;
  const cast = (input: string, output: string, to: number) =>
    create(NodeProtoSchema, {
      opType: 'Cast',
      name: names.node('Cast_widen'),
      input: [input],
      output: [output],
      attribute: [makeAttribute('to', attr.int(to))],
    });
  const initializers = new Set(graph.initializer.map((t) => t.name));
  for (const input of graph.input) {
    if (!isHalfTensor(input) || initializers.has(input.name)) continue;
    const wide = names.value(`${input.name}_fp32`);
    replaceUses(graph, input.name, wide);
    graph.node.unshift(cast(input.name, wide, FLOAT));
    graph.valueInfo.push(makeValueInfo(wide, 'float32', shapeOf(input)));
    edges++;
  }
  for (const output of graph.output) {
    if (!isHalfTensor(output)) continue;
    const wide = names.value(`${output.name}_fp32`);
    // The producer (and any reader of the output inside the graph) now sees the widened name.
    for (const node of graph.node) node.output = node.output.map((o) => (o === output.name ? wide : o));
    replaceUses(graph, output.name, wide);
    graph.node.push(cast(wide, output.name, FLOAT16));
    graph.valueInfo.push(makeValueInfo(wide, 'float32', shapeOf(output)));
    edges++;
  }
  return edges;
}

export async function widenFloat16Detailed(model: OnnxModel): Promise<WidenResult> {
  let tensors = 0;
  for (const { tensor } of modelTensors(model.proto)) {
    if (tensor.dataType !== FLOAT16) continue;
    const { dims, data } = await readTensor(model, tensor);
    setTensorData(tensor, float16ToFloat32(data as Uint16Array), dims, 'float32');
    tensors++;
  }
  let selectors = 0;
  let types = 0;
  const main = mainGraph(model.proto);
  for (const graph of modelGraphs(model.proto)) {
    for (const node of graph.node) {
      for (const a of node.attribute) {
        if (TYPE_SELECTORS.has(a.name) && a.i === BigInt(FLOAT16)) {
          a.i = BigInt(FLOAT);
          selectors++;
        }
      }
    }
    for (const v of graph.valueInfo) if (widenType(v.type)) types++;
    if (graph === main) continue;
    for (const v of [...graph.input, ...graph.output]) if (widenType(v.type)) types++;
  }
  for (const fn of model.proto.functions) {
    for (const node of fn.node) {
      for (const a of node.attribute) {
        if (TYPE_SELECTORS.has(a.name) && a.i === BigInt(FLOAT16)) {
          a.i = BigInt(FLOAT);
          selectors++;
        }
      }
    }
  }
  const edges = keepInterface(main, new NameGenerator(model.proto));
  log.info({ source: model.source, tensors, selectors, types, edges }, 'float16 model widened to float32');
  return { model, tensors, selectors, types, edges };
}

/** `(model, context) → model` computing in float32 (see the module comment); says so in the report. */
export const widenFloat16: Pass = async (model, context) => {
  const result = await widenFloat16Detailed(model);
  context.report.warnings.push(
    `the model computes in float16: widened to float32 (${result.tensors} tensors, ${result.selectors} type attributes, ${result.types} value types${result.edges > 0 ? `; ${result.edges} float16 inputs/outputs kept behind Casts` : ''}) so every variant is planned from float32; an fp16 variant is made only where the target computes in fp16`,
  );
  return result.model;
};
