import type { GraphProto, NodeProto } from 'onnx-buf';
import type { DType } from '../../runtime/tensor/index.js';
import { constantValue, mainGraph, nodeSubgraphs, readTensor, valueTypes, type OnnxModel } from '../onnx/index.js';
import { inferValueTypes, type InferredValue } from './shapes.js';

/**
 * Which nodes of a float32 model compute in float16, shared by the fp16 pass and its CPU simulation. Node types come
 * from ONNX Runtime's own inference (shapes.ts), so every value's element type is known without guessing operator
 * type rules. Only the main graph converts: a node holding subgraphs (If, Loop, Scan) keeps them in float32, with
 * Casts where its inputs and the outer values its subgraphs read come from float16 nodes.
 */

/**
 * onnxconverter-common's float16.py DEFAULT_OP_BLOCK_LIST (also ONNX Runtime's transformers/float16.py): ML-domain
 * ops and ops whose fp16 kernels are missing or unsafe in common execution providers.
 */
const CONVERTER_DEFAULTS = Object.freeze([
  'ArrayFeatureExtractor',
  'Binarizer',
  'CastMap',
  'CategoryMapper',
  'DictVectorizer',
  'FeatureVectorizer',
  'Imputer',
  'LabelEncoder',
  'LinearClassifier',
  'LinearRegressor',
  'Normalizer',
  'OneHotEncoder',
  'RandomUniformLike',
  'SVMClassifier',
  'SVMRegressor',
  'Scaler',
  'TreeEnsembleClassifier',
  'TreeEnsembleRegressor',
  'ZipMap',
  'NonMaxSuppression',
  'TopK',
  'RoiAlign',
  'Resize',
  'Range',
  'CumSum',
  'Min',
  'Max',
  'Upsample',
]);

/**
 * Op type → why it stays float32. Beyond the converter's list, two principled additions:
 * - Ops with a float input or output whose type the ONNX spec fixes to float32 or ties to another type variable
 *   (Operators.md): QuantizeLinear/DequantizeLinear and the QLinear ops (`x_scale: tensor(float)` before opset 19/21),
 *   TfIdfVectorizer (`T1: tensor(float)`), the window and MelWeightMatrix generators (`output_datatype`).
 * - Reductions that accumulate over an axis, whose result is not bounded by their inputs and passes fp16's 65504 on
 *   ordinary activations (a sum of 4096 values of 16 already does): ReduceSum, ReduceSumSquare, ReduceProd, ReduceL1,
 *   ReduceL2, ReduceLogSum, ReduceLogSumExp. Means (ReduceMean, GlobalAveragePool) are bounded and stay converted.
 */
export const FP16_BLOCK_LIST: Readonly<Record<string, string>> = Object.freeze({
  ...Object.fromEntries(CONVERTER_DEFAULTS.map((op) => [op, 'onnxconverter-common float16 default block list'])),
  QuantizeLinear: 'quantisation scales are float32 (Operators.md)',
  DequantizeLinear: 'quantisation scales are float32 (Operators.md)',
  DynamicQuantizeLinear: 'quantisation scales are float32 (Operators.md)',
  QLinearConv: 'quantisation scales are float32 (Operators.md)',
  QLinearMatMul: 'quantisation scales are float32 (Operators.md)',
  TfIdfVectorizer: 'its output type is tensor(float) (Operators.md)',
  MelWeightMatrix: 'its output type is set by output_datatype',
  HannWindow: 'its output type is set by output_datatype',
  HammingWindow: 'its output type is set by output_datatype',
  BlackmanWindow: 'its output type is set by output_datatype',
  ReduceSum: 'an unbounded accumulation: can exceed fp16 range (65504)',
  ReduceSumSquare: 'an unbounded accumulation: can exceed fp16 range (65504)',
  ReduceProd: 'an unbounded accumulation: can exceed fp16 range (65504)',
  ReduceL1: 'an unbounded accumulation: can exceed fp16 range (65504)',
  ReduceL2: 'an unbounded accumulation: can exceed fp16 range (65504)',
  ReduceLogSum: 'an unbounded accumulation: can exceed fp16 range (65504)',
  ReduceLogSumExp: 'an unbounded accumulation: can exceed fp16 range (65504)',
});

/**
 * Ops whose float output type is steered by an attribute (rewritten FLOAT → FLOAT16 when converted) rather than by a
 * float input; any other op producing float32 from no float32 input cannot be made to produce fp16 and is blocked.
 */
export const FP16_STEERING_ATTRIBUTE: Readonly<Record<string, string>> = Object.freeze({
  Cast: 'to',
  Constant: 'value',
  ConstantOfShape: 'value',
  EyeLike: 'dtype',
  RandomNormal: 'dtype',
  RandomUniform: 'dtype',
  RandomNormalLike: 'dtype',
  Bernoulli: 'dtype',
});

/** Outputs whose type the spec fixes to float32 even when the node computes in fp16 (LayerNormalization's stash_type). */
const FLOAT32_OUTPUTS: Readonly<Record<string, readonly number[]>> = Object.freeze({
  LayerNormalization: [1, 2], // Mean, InvStdDev: type U, set by stash_type (default 1 = float)
});

export interface Fp16Options {
  /** More op types to keep in float32 (default domain), on top of FP16_BLOCK_LIST. */
  readonly blockOps?: readonly string[];
  /** Node names to keep in float32 (e.g. the ones an accuracy gate blamed). */
  readonly blockNodes?: readonly string[];
}

export interface Fp16Plan {
  readonly graph: GraphProto;
  /** Element type of every main-graph value (declared, or inferred by ORT). */
  readonly dtypeOf: (name: string) => DType | undefined;
  readonly converted: ReadonlySet<NodeProto>;
  /** Nodes with float32 inputs or outputs that stay float32, and why. */
  readonly blocked: readonly { readonly node: NodeProto; readonly reason: string }[];
  /** float32 values that live in float16 in the converted model: converted nodes' outputs, their initializers. */
  readonly half: ReadonlySet<string>;
  /** Inferred shapes, for the value_info of values the passes add. */
  readonly inferred: ReadonlyMap<string, InferredValue>;
}

const isDefaultDomain = (node: NodeProto): boolean => node.domain === '' || node.domain === 'ai.onnx';

export function float32Outputs(node: NodeProto, isFloat: (name: string) => boolean): number[] {
  const fixed = isDefaultDomain(node) ? (FLOAT32_OUTPUTS[node.opType] ?? []) : [];
  return node.output.flatMap((o, i) => (o !== '' && isFloat(o) && !fixed.includes(i) ? [i] : []));
}

/** Decides, for each main-graph node touching float32 values, whether it converts and otherwise why not. */
export async function planFloat16(model: OnnxModel, workDir: string, options: Fp16Options = {}): Promise<Fp16Plan> {
  const graph = mainGraph(model.proto);
  const inferred = await inferValueTypes(model, workDir);
  const declared = valueTypes(graph);
  const dtypeOf = (name: string): DType | undefined => inferred.get(name)?.dtype ?? declared.get(name)?.dtype;
  const isFloat = (name: string): boolean => name !== '' && dtypeOf(name) === 'float32';
  const nonTensor = (name: string): boolean =>
    name !== '' && inferred.has(name) && inferred.get(name)?.dtype === undefined;
  const overflowing = await overflowingConstants(model, graph);
  const blockOps = new Set(options.blockOps ?? []);
  const blockNodes = new Set(options.blockNodes ?? []);
  const converted = new Set<NodeProto>();
  const blocked: { node: NodeProto; reason: string }[] = [];
  for (const node of graph.node) {
    const floatIn = node.input.some(isFloat);
    const floatOut = node.output.some(isFloat);
    if (!floatIn && !floatOut) continue;
    const reason = blockReason(node, { floatIn, blockOps, blockNodes, nonTensor, overflowing });
    if (reason === undefined) converted.add(node);
    else blocked.push({ node, reason });
  }
  const half = new Set<string>();
  // An initializer that is also a graph input is an overridable feed: it keeps its declared type.
  // One that is a graph output too keeps its type: the outputs stay float32.
  const io = new Set([...graph.input, ...graph.output].map((v) => v.name));
  const initializers = new Set(graph.initializer.map((t) => t.name).filter((n) => !io.has(n)));
  for (const node of converted) {
    for (const i of float32Outputs(node, isFloat)) half.add(node.output[i] as string);
    for (const name of node.input) if (isFloat(name) && initializers.has(name)) half.add(name);
  }
  return { graph, dtypeOf, converted, blocked, half, inferred };
}

function blockReason(
  node: NodeProto,
  facts: {
    floatIn: boolean;
    blockOps: ReadonlySet<string>;
    blockNodes: ReadonlySet<string>;
    nonTensor: (name: string) => boolean;
    overflowing: ReadonlyMap<string, number>;
  },
): string | undefined {
  if (facts.blockNodes.has(node.name)) return 'requested (blockNodes)';
  for (const name of [...node.input, ...node.output]) {
    const peak = facts.overflowing.get(name);
    if (peak !== undefined) return `${name} holds ${peak.toPrecision(3)}, beyond fp16's largest finite value 65504`;
  }
  if (!isDefaultDomain(node)) return `${node.domain} operator: its float16 support is unknown`;
  if (facts.blockOps.has(node.opType)) return 'requested (blockOps)';
  if (Object.hasOwn(FP16_BLOCK_LIST, node.opType)) return FP16_BLOCK_LIST[node.opType];
  if ([...nodeSubgraphs(node)].length > 0) return 'holds subgraphs: kept float32, with Casts at its boundary';
  if (node.attribute.some((a) => a.sparseTensor !== undefined)) return 'holds a sparse tensor attribute';
  if ([...node.input, ...node.output].some(facts.nonTensor)) return 'reads or produces sequences or optionals';
  if (!facts.floatIn && !Object.hasOwn(FP16_STEERING_ATTRIBUTE, node.opType)) {
    return 'produces float32 from no float input, and no attribute selects its output type';
  }
  return undefined;
}

const FP16_MAX = 65504;

function peakOf(data: Float32Array): number {
  let peak = 0;
  for (const x of data) {
    const a = Math.abs(x);
    if (a > peak && Number.isFinite(a)) peak = a;
  }
  return peak;
}

/**
 * float32 constants (initializers, Constant values) with finite values fp16 cannot hold: rounding would make them
 * Inf, clamping would change the model. The nodes that read or make them stay float32 (BatchNormalization running
 * variances beyond 65504 occur in real models, e.g. PaddleOCR's detector; folding BN into Conv first removes them).
 */
async function overflowingConstants(model: OnnxModel, graph: GraphProto): Promise<Map<string, number>> {
  const result = new Map<string, number>();
  for (const tensor of graph.initializer) {
    if (tensor.dataType !== 1) continue; // FLOAT
    const peak = peakOf((await readTensor(model, tensor)).data as Float32Array);
    if (peak > FP16_MAX) result.set(tensor.name, peak);
  }
  for (const node of graph.node) {
    if (node.opType !== 'Constant' || node.output[0] === undefined || node.attribute.some((a) => a.sparseTensor))
      continue;
    const value = constantValue(node);
    if (value.dtype !== 'float32') continue;
    const peak = peakOf(value.data as Float32Array);
    if (peak > FP16_MAX) result.set(node.output[0], peak);
  }
  return result;
}
