import { create } from '@bufbuild/protobuf';
import {
  GraphProtoSchema,
  ModelProtoSchema,
  NodeProtoSchema,
  OperatorSetIdProtoSchema,
  StringStringEntryProtoSchema,
  ValueInfoProtoSchema,
  type GraphProto,
  type ModelProto,
} from 'onnx-buf';
import { OutpostError } from '../../runtime/errors.js';
import type { DType, TensorData } from '../../runtime/tensor/index.js';
import { makeAttribute, type AttributeValue } from './attributes.js';
import { makeValueInfo, type Dim } from './inspect.js';
import { NameGenerator } from './names.js';
import { inferDType, makeTensor } from './tensor.js';

/**
 * A small builder for models in tests and `models/`. Values are plain name strings; nodes get unique generated
 * names (one NameGenerator shared with subgraph builders, since IR.md forbids a subgraph node output from reusing an
 * outer name). `build()` picks the lowest IR version that covers the opsets and element types used.
 *
 *   const g = new GraphBuilder('mlp');
 *   const x = g.input('x', 'float32', ['batch', 4]);
 *   const w = g.initializer('w', new Float32Array(32), [4, 8]);
 *   g.output(g.node('MatMul', [x, w]), 'float32', ['batch', 8]);
 *   const model = g.build({ opsets: { '': 17 } });
 */
export const PRODUCER_NAME = 'outpost';

export interface NodeOptions {
  /** Node name; generated from the op type when absent. */
  name?: string;
  /** Operator set domain; '' (default) is ONNX's own. */
  domain?: string;
  docString?: string;
}

export interface BuildOptions {
  /** Domain → opset version, e.g. `{ '': 17, 'com.microsoft': 1 }`. */
  opsets: Readonly<Record<string, number>>;
  /** Overrides the IR version derived from opsets and dtypes. */
  irVersion?: number;
  producerVersion?: string;
  modelVersion?: number;
  docString?: string;
  metadata?: Readonly<Record<string, string>>;
}

/**
 * Lowest IR version per default-domain opset: onnx docs/Versioning.md, "Released Versions" (opset 24 → IR 12 and
 * 25 → IR 13 follow the IR_VERSION enum comments in onnx.proto 1.20, which date IR 12 and 13 with those releases).
 */
const IR_FOR_OPSET: readonly (readonly [number, number])[] = Object.freeze([
  [1, 3],
  [9, 4],
  [10, 5],
  [11, 6],
  [12, 7],
  [15, 8],
  [19, 9],
  [21, 10],
  [23, 11],
  [24, 12],
  [25, 13],
]);

/** Lowest IR version per element type (onnx.proto, enum Version: the IR that added each type). */
const IR_FOR_DTYPE: Readonly<Partial<Record<DType, number>>> = Object.freeze({
  bfloat16: 4,
  float8e4m3fn: 9,
  float8e4m3fnuz: 9,
  float8e5m2: 9,
  float8e5m2fnuz: 9,
  uint4: 10,
  int4: 10,
  float4e2m1: 11,
  float8e8m0: 12,
  uint2: 13,
  int2: 13,
});

function irVersionFor(opset: number | undefined, dtypes: ReadonlySet<DType>): number {
  let ir = 3;
  for (const [since, version] of IR_FOR_OPSET) if ((opset ?? 1) >= since) ir = version;
  for (const dtype of dtypes) ir = Math.max(ir, IR_FOR_DTYPE[dtype] ?? 3);
  return ir;
}

interface Shared {
  names: NameGenerator;
  dtypes: Set<DType>;
}

export class GraphBuilder {
  private readonly proto: GraphProto;
  private readonly shared: Shared;

  constructor(name: string, shared?: Shared) {
    this.proto = create(GraphProtoSchema, { name });
    this.shared = shared ?? { names: new NameGenerator(), dtypes: new Set() };
  }

  get name(): string {
    return this.proto.name;
  }

  /** A builder for a subgraph (If branch, Loop/Scan body) that shares this one's name space. */
  subgraph(name: string): GraphBuilder {
    return new GraphBuilder(name, this.shared);
  }

  private claim(name: string): string {
    if (this.shared.names.hasValue(name)) {
      throw new OutpostError(
        'INVALID_ARGUMENT',
        `value name "${name}" is already used in graph "${this.proto.name}" or its scope`,
        {
          details: { name },
        },
      );
    }
    this.shared.names.reserveValue(name);
    return name;
  }

  input(name: string, dtype: DType, shape?: readonly Dim[]): string {
    this.shared.dtypes.add(dtype);
    this.proto.input.push(makeValueInfo(this.claim(name), dtype, shape));
    return name;
  }

  /** Declares `value` a graph output. Main-graph outputs need a dtype and shape ([IR.md] "Graphs"). */
  output(value: string, dtype?: DType, shape?: readonly Dim[]): string {
    if (dtype === undefined) {
      this.proto.output.push(create(ValueInfoProtoSchema, { name: value }));
    } else {
      this.shared.dtypes.add(dtype);
      this.proto.output.push(makeValueInfo(value, dtype, shape));
    }
    return value;
  }

  /** Type and shape of an intermediate value (graph.value_info). */
  valueInfo(value: string, dtype: DType, shape?: readonly Dim[]): void {
    this.shared.dtypes.add(dtype);
    this.proto.valueInfo.push(makeValueInfo(value, dtype, shape));
  }

  initializer(name: string, data: TensorData, dims: readonly number[], dtype: DType = inferDType(data)): string {
    this.shared.dtypes.add(dtype);
    this.proto.initializer.push(makeTensor(this.claim(name), data, dims, dtype));
    return name;
  }

  /** A Constant node holding `data`; returns its output. */
  constant(
    data: TensorData,
    dims: readonly number[],
    dtype: DType = inferDType(data),
    options: NodeOptions & { output?: string } = {},
  ): string {
    this.shared.dtypes.add(dtype);
    const output = options.output === undefined ? this.shared.names.value('const') : this.claim(options.output);
    this.addNode('Constant', [], [output], { value: makeTensor(output, data, dims, dtype) }, options);
    return output;
  }

  /** A node with one output; returns the output's name. Optional inputs are ''. */
  node(
    opType: string,
    inputs: readonly string[],
    attrs: Readonly<Record<string, AttributeValue>> = {},
    options: NodeOptions = {},
  ): string {
    return this.nodeOutputs(opType, inputs, 1, attrs, options)[0] as string;
  }

  /** A node with several outputs: a count (names generated) or explicit fresh names ('' skips an optional output). */
  nodeOutputs(
    opType: string,
    inputs: readonly string[],
    outputs: number | readonly string[],
    attrs: Readonly<Record<string, AttributeValue>> = {},
    options: NodeOptions = {},
  ): string[] {
    const stem = opType.toLowerCase();
    const names =
      typeof outputs === 'number'
        ? Array.from({ length: outputs }, () => this.shared.names.value(stem))
        : outputs.map((o) => (o === '' ? o : this.claim(o)));
    this.addNode(opType, inputs, names, attrs, options);
    return names;
  }

  private addNode(
    opType: string,
    inputs: readonly string[],
    outputs: string[],
    attrs: Readonly<Record<string, AttributeValue>>,
    options: NodeOptions,
  ): void {
    if (options.name !== undefined) this.shared.names.reserveNode(options.name);
    const node = create(NodeProtoSchema, {
      opType,
      name: options.name ?? this.shared.names.node(opType),
      input: [...inputs],
      output: outputs,
      attribute: Object.entries(attrs).map(([key, value]) => makeAttribute(key, value)),
    });
    // proto2 fields have presence: set only what was given, so defaults are not written out as empty values.
    if (options.domain !== undefined && options.domain !== '') node.domain = options.domain;
    if (options.docString !== undefined) node.docString = options.docString;
    this.proto.node.push(node);
  }

  /** The graph built so far (for a subgraph attribute, or to keep editing with the graph helpers). */
  toGraph(): GraphProto {
    return this.proto;
  }

  build(options: BuildOptions): ModelProto {
    const entries = Object.entries(options.opsets);
    if (entries.length === 0) {
      throw new OutpostError('INVALID_ARGUMENT', 'build() needs at least one opset, e.g. { "": 17 }');
    }
    const defaultOpset = options.opsets[''] ?? options.opsets['ai.onnx'];
    const model = create(ModelProtoSchema, {
      irVersion: BigInt(options.irVersion ?? irVersionFor(defaultOpset, this.shared.dtypes)),
      opsetImport: entries.map(([domain, version]) =>
        create(OperatorSetIdProtoSchema, { domain, version: BigInt(version) }),
      ),
      producerName: PRODUCER_NAME,
      graph: this.proto,
      metadataProps: Object.entries(options.metadata ?? {}).map(([key, value]) =>
        create(StringStringEntryProtoSchema, { key, value }),
      ),
    });
    if (options.producerVersion !== undefined) model.producerVersion = options.producerVersion;
    if (options.modelVersion !== undefined) model.modelVersion = BigInt(options.modelVersion);
    if (options.docString !== undefined) model.docString = options.docString;
    return model;
  }
}
