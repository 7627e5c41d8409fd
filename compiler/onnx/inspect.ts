import { create, isMessage } from '@bufbuild/protobuf';
import {
  ModelProtoSchema,
  TensorShapeProtoSchema,
  TensorShapeProto_DimensionSchema,
  TypeProtoSchema,
  TypeProto_TensorSchema,
  ValueInfoProtoSchema,
  type GraphProto,
  type ModelProto,
  type TensorShapeProto,
  type TypeProto,
  type ValueInfoProto,
} from 'onnx-buf';
import { OutpostError } from '../../runtime/errors.js';
import { DTYPES, dtypeFromOnnx, type DType } from '../../runtime/tensor/index.js';
import { elementCount, tensorDims } from './tensor.js';
import { graphAndSubgraphs, modelGraphs, modelTensors } from './walk.js';

/**
 * Read-only facts about a model: the declared type of a value, opset versions, op counts, parameter counts.
 * Shapes use numbers for fixed dims, strings for symbolic ones (dim_param, e.g. "batch") and null for unknown.
 */
export type Dim = number | string | null;

export interface ValueType {
  name: string;
  /** Where the declaration was found; a name that is both input and initializer reports 'input'. */
  kind: 'input' | 'output' | 'value_info' | 'initializer';
  /** Type constructor (onnx.proto, TypeProto.value); only tensors carry dtype and shape. */
  type: 'tensor' | 'sparse_tensor' | 'sequence' | 'map' | 'optional' | 'unknown';
  /** Element type, undefined for non-tensor types or element types unknown to this build. */
  dtype: DType | undefined;
  /** Undefined when the declaration has no shape (rank unknown). */
  shape: Dim[] | undefined;
}

function shapeOf(shape: TensorShapeProto | undefined): Dim[] | undefined {
  if (shape === undefined) return undefined;
  return shape.dim.map((d) => {
    if (d.value.case === 'dimValue') return Number(d.value.value);
    if (d.value.case === 'dimParam') return d.value.value;
    return null;
  });
}

const TYPE_CASES = Object.freeze({
  tensorType: 'tensor',
  sparseTensorType: 'sparse_tensor',
  sequenceType: 'sequence',
  mapType: 'map',
  optionalType: 'optional',
} as const);

function fromTypeProto(name: string, kind: ValueType['kind'], type: TypeProto | undefined): ValueType {
  const value = type?.value;
  if (value?.case === 'tensorType' || value?.case === 'sparseTensorType') {
    return {
      name,
      kind,
      type: TYPE_CASES[value.case],
      dtype: dtypeFromOnnx(value.value.elemType),
      shape: shapeOf(value.value.shape),
    };
  }
  return {
    name,
    kind,
    type: value?.case === undefined ? 'unknown' : TYPE_CASES[value.case],
    dtype: undefined,
    shape: undefined,
  };
}

/** Declared types of every value the graph declares: inputs, outputs, value_info, initializers (first wins). */
export function valueTypes(graph: GraphProto): Map<string, ValueType> {
  const map = new Map<string, ValueType>();
  const add = (list: readonly ValueInfoProto[], kind: ValueType['kind']): void => {
    for (const v of list) if (!map.has(v.name)) map.set(v.name, fromTypeProto(v.name, kind, v.type));
  };
  add(graph.input, 'input');
  add(graph.output, 'output');
  add(graph.valueInfo, 'value_info');
  for (const t of graph.initializer) {
    if (!map.has(t.name)) {
      map.set(t.name, {
        name: t.name,
        kind: 'initializer',
        type: 'tensor',
        dtype: dtypeFromOnnx(t.dataType),
        shape: tensorDims(t),
      });
    }
  }
  return map;
}

/** The declared type of one value, or undefined when nothing in the graph declares it. */
export function valueType(graph: GraphProto, name: string): ValueType | undefined {
  return valueTypes(graph).get(name);
}

/** A tensor TypeProto; `shape` undefined leaves the rank unknown. */
export function tensorTypeProto(dtype: DType, shape?: readonly Dim[]): TypeProto {
  const dims = shape?.map((d) =>
    create(TensorShapeProto_DimensionSchema, {
      value:
        d === null
          ? { case: undefined }
          : typeof d === 'number'
            ? { case: 'dimValue', value: BigInt(d) }
            : { case: 'dimParam', value: d },
    }),
  );
  return create(TypeProtoSchema, {
    value: {
      case: 'tensorType',
      value: create(TypeProto_TensorSchema, {
        elemType: DTYPES[dtype].onnx,
        shape: dims === undefined ? undefined : create(TensorShapeProtoSchema, { dim: dims }),
      }),
    },
  });
}

export function makeValueInfo(name: string, dtype: DType, shape?: readonly Dim[]): ValueInfoProto {
  return create(ValueInfoProtoSchema, { name, type: tensorTypeProto(dtype, shape) });
}

/** The imported version of an operator set; '' and 'ai.onnx' both name the default ONNX domain. */
export function opsetVersion(model: ModelProto, domain = ''): number | undefined {
  const wanted = domain === 'ai.onnx' ? '' : domain;
  const entry = model.opsetImport.find((o) => (o.domain === 'ai.onnx' ? '' : o.domain) === wanted);
  return entry === undefined ? undefined : Number(entry.version);
}

/** Domain → version for every imported operator set. */
export function opsets(model: ModelProto): Map<string, number> {
  return new Map(model.opsetImport.map((o) => [o.domain === 'ai.onnx' ? '' : o.domain, Number(o.version)]));
}

/**
 * How many nodes use each operator, over the graph and all its subgraphs. Keys are the op type for the default
 * domain and `domain:OpType` for others (e.g. `com.microsoft:FusedConv`); sorted by count, then name.
 */
export function opHistogram(root: ModelProto | GraphProto): Map<string, number> {
  const counts = new Map<string, number>();
  const graphs = isMessage(root, ModelProtoSchema) ? modelGraphs(root) : graphAndSubgraphs(root);
  for (const graph of graphs) {
    for (const node of graph.node) {
      const key = node.domain === '' || node.domain === 'ai.onnx' ? node.opType : `${node.domain}:${node.opType}`;
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }
  }
  return new Map([...counts].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])));
}

export interface ParameterCountOptions {
  /** Count Constant-node tensors too (some exporters, e.g. spox for Silero VAD v5, keep all weights there). */
  constants?: boolean; // default true
}

/**
 * Elements stored in the model's initializers (every graph, subgraph and function) and, by default, in node
 * attribute tensors. Counted from dims, so external tensors are not read.
 */
export function parameterCount(model: ModelProto, options: ParameterCountOptions = {}): number {
  const constants = options.constants ?? true;
  let total = 0;
  for (const { tensor, kind } of modelTensors(model)) {
    if (kind === 'initializer' || (constants && kind === 'attribute')) total += elementCount(tensorDims(tensor));
  }
  return total;
}

/** The graph of a model, or MODEL_INVALID (decodeModel guarantees one; a hand-built proto may lack it). */
export function mainGraph(model: ModelProto): GraphProto {
  if (model.graph === undefined) throw new OutpostError('MODEL_INVALID', 'the model has no graph');
  return model.graph;
}
