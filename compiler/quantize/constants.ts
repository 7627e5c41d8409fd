import type { GraphProto, NodeProto, TensorProto } from 'onnx-buf';
import type { DType, TensorData } from '../../runtime/tensor/index.js';
import { constantValue, getAttribute, makeTensor, readTensor, type OnnxModel } from '../onnx/index.js';

/**
 * Constant values of one graph: initializers and Constant-node outputs. Exporters differ (PyTorch writes
 * initializers, Paddle2ONNX Constant nodes, spox both), and a weight is a weight either way. An initializer that is
 * also a graph input is not constant ([IR.md, "Graphs"]: such an initializer is only a default the caller may
 * override).
 */
export interface ConstantSource {
  readonly name: string;
  readonly initializer: TensorProto | undefined;
  readonly node: NodeProto | undefined;
}

export function constantSources(graph: GraphProto): Map<string, ConstantSource> {
  const inputs = new Set(graph.input.map((i) => i.name));
  const map = new Map<string, ConstantSource>();
  for (const tensor of graph.initializer) {
    if (!inputs.has(tensor.name)) map.set(tensor.name, { name: tensor.name, initializer: tensor, node: undefined });
  }
  for (const node of graph.node) {
    const out = node.output[0];
    if (node.opType === 'Constant' && (node.domain === '' || node.domain === 'ai.onnx') && out !== undefined) {
      map.set(out, { name: out, initializer: undefined, node });
    }
  }
  return map;
}

export interface ConstantData {
  readonly dtype: DType;
  readonly dims: number[];
  readonly data: TensorData;
}

/** The value of a constant (external data read from disk when the tensor lives there). */
export async function readConstant(model: OnnxModel, source: ConstantSource): Promise<ConstantData> {
  if (source.initializer !== undefined) return readTensor(model, source.initializer);
  const node = source.node as NodeProto;
  const t = getAttribute(node, 'value')?.t;
  return t === undefined ? constantValue(node) : readTensor(model, t);
}

/** float32 constants only (the only float type quantised here); undefined for anything else. */
export async function readFloat32(
  model: OnnxModel,
  source: ConstantSource | undefined,
): Promise<{ dims: number[]; data: Float32Array } | undefined> {
  if (source === undefined) return undefined;
  const value = await readConstant(model, source);
  return value.dtype === 'float32' && value.data instanceof Float32Array
    ? { dims: value.dims, data: value.data }
    : undefined;
}

/** Adds an initializer to the graph and returns its name. */
export function addInitializer(
  graph: GraphProto,
  name: string,
  data: TensorData,
  dims: readonly number[],
  dtype?: DType,
): string {
  graph.initializer.push(makeTensor(name, data, dims, dtype));
  return name;
}

/** Removes a constant nobody reads any more (the float weight a quantised copy replaced). */
export function dropIfUnused(graph: GraphProto, source: ConstantSource, stillRead: boolean): void {
  if (stillRead) return;
  if (source.initializer !== undefined) {
    const i = graph.initializer.indexOf(source.initializer);
    if (i >= 0) graph.initializer.splice(i, 1);
    graph.valueInfo = graph.valueInfo.filter((v) => v.name !== source.name);
  } else if (source.node !== undefined) {
    const i = graph.node.indexOf(source.node);
    if (i >= 0) graph.node.splice(i, 1);
  }
}
