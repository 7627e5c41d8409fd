import type { AttributeProto, GraphProto, NodeProto } from 'onnx-buf';
import { getAttribute, tensorDims, valueTypes } from '../onnx/index.js';

/**
 * Tensor ranks (not shapes), propagated forward through one graph from its declared inputs, initializers and
 * Constant nodes. Only what an opset upgrade needs: whether a Softmax's axis is its last (Softmax-13 changed from
 * "coerce to 2-D at axis" to "along axis", [ONNX Changelog, Softmax-13]), and ONNX Runtime's own inference leaves
 * the rank unknown behind a computed Reshape. Unknown stays unknown: callers fall back to a rank-free rewrite.
 */
type RankRule = (inputs: readonly (number | undefined)[], node: NodeProto) => number | undefined;

const ints = (a: AttributeProto | undefined): bigint[] | undefined => (a === undefined ? undefined : a.ints);
const int = (a: AttributeProto | undefined, fallback: number): number => (a === undefined ? fallback : Number(a.i));

const same: RankRule = ([x]) => x;
/** Multidirectional (numpy) broadcasting: the largest rank ([ONNX Broadcasting.md]). */
const broadcast: RankRule = (inputs) => {
  let rank: number | undefined = 0;
  for (const r of inputs) rank = r === undefined || rank === undefined ? undefined : Math.max(rank, r);
  return rank;
};

const reduce: RankRule = ([x], node) => {
  if (x === undefined) return undefined;
  if (int(getAttribute(node, 'keepdims'), 1) === 1) return x;
  const axes = ints(getAttribute(node, 'axes'));
  return axes === undefined ? (node.input.length > 1 ? undefined : 0) : x - axes.length;
};

function group(rule: RankRule, ops: string): Record<string, RankRule> {
  return Object.fromEntries(ops.split(' ').map((op) => [op, rule]));
}

const RULES: Readonly<Record<string, RankRule>> = Object.freeze({
  ...group(
    same,
    'Abs AveragePool BatchNormalization Cast Ceil Clip Conv ConvTranspose Dropout Elu Erf Exp Floor ' +
      'GlobalAveragePool GlobalMaxPool HardSigmoid HardSwish Identity InstanceNormalization LeakyRelu Log ' +
      'LogSoftmax LRN MaxPool Neg Not Reciprocal Relu Resize Round Selu Sigmoid Sign Slice Softmax Softplus ' +
      'Softsign Sqrt Tanh Upsample CumSum Hardmax LayerNormalization Pad Tile DepthToSpace SpaceToDepth',
  ),
  ...group(
    broadcast,
    'Add Sub Mul Div Pow Max Min Sum Mean Equal Less Greater And Or Where PRelu LessOrEqual GreaterOrEqual ' +
      'Mod Xor BitShift Expand',
  ),
  ...group(
    reduce,
    'ReduceMean ReduceMax ReduceMin ReduceSum ReduceProd ReduceL1 ReduceL2 ReduceLogSum ReduceLogSumExp ' +
      'ReduceSumSquare ArgMax ArgMin',
  ),
  Concat: (inputs) => inputs.find((r) => r !== undefined),
  Shape: () => 1,
  Size: () => 0,
  Flatten: () => 2,
  Gemm: () => 2,
  // [MatMul] numpy.matmul: a 1-D operand gains then loses a dimension.
  MatMul: ([a, b]) =>
    a === undefined || b === undefined
      ? undefined
      : Math.max(a, b) - (a === 1 ? 1 : 0) - (b === 1 ? 1 : 0) + (a === 1 && b === 1 ? 1 : 0),
  Transpose: ([x], node) => ints(getAttribute(node, 'perm'))?.length ?? x,
  Squeeze: ([x], node) => {
    const axes = ints(getAttribute(node, 'axes'));
    return x === undefined || axes === undefined ? undefined : x - axes.length;
  },
  Unsqueeze: ([x], node) => {
    const axes = ints(getAttribute(node, 'axes'));
    return x === undefined || axes === undefined ? undefined : x + axes.length;
  },
  Gather: ([data, indices]) => (data === undefined || indices === undefined ? undefined : data + indices - 1),
});

/**
 * Length of a 1-D integer value built from shapes (what a computed Reshape target is made of): constants, Shape(x)
 * of a known rank, Concat along axis 0, Slice with constant bounds (attributes before opset 10), Cast/Identity.
 */
function length1d(node: NodeProto, lengths: ReadonlyMap<string, number>, ranks: ReadonlyMap<string, number>) {
  const first = lengths.get(node.input[0] ?? '');
  switch (node.opType) {
    case 'Shape':
      return ranks.get(node.input[0] ?? '');
    case 'Cast':
    case 'Identity':
      return first;
    case 'Concat': {
      let total = 0;
      for (const name of node.input) {
        const n = lengths.get(name);
        if (n === undefined) return undefined;
        total += n;
      }
      return total;
    }
    case 'Slice': {
      const starts = ints(getAttribute(node, 'starts'));
      const ends = ints(getAttribute(node, 'ends'));
      if (first === undefined || starts?.length !== 1 || ends?.length !== 1) return undefined;
      // [Slice] negative bounds count from the end; both are clamped to [0, length].
      const clamp = (v: bigint): number => {
        const i = Number(v < 0n ? v + BigInt(first) : v);
        return Math.max(0, Math.min(first, i));
      };
      return Math.max(0, clamp(ends[0] as bigint) - clamp(starts[0] as bigint));
    }
    default:
      return undefined;
  }
}

/** Name → rank for the values of `graph` whose rank follows from the rules above. */
export function inferRanks(graph: GraphProto): Map<string, number> {
  const ranks = new Map<string, number>();
  const lengths = new Map<string, number>(); // 1-D integer values: their length, for Reshape's shape input
  for (const [name, type] of valueTypes(graph)) if (type.shape !== undefined) ranks.set(name, type.shape.length);
  for (const tensor of graph.initializer) {
    const dims = tensorDims(tensor);
    if (dims.length === 1) lengths.set(tensor.name, dims[0] as number);
  }
  for (const node of graph.node) {
    const out = node.output[0];
    if (out === undefined || out === '') continue;
    if (node.opType === 'Constant') {
      const t = getAttribute(node, 'value')?.t;
      if (t !== undefined) {
        const dims = tensorDims(t);
        ranks.set(out, dims.length);
        if (dims.length === 1) lengths.set(out, dims[0] as number);
      }
      continue;
    }
    const length = length1d(node, lengths, ranks);
    if (length !== undefined) lengths.set(out, length);
    if (node.opType === 'Reshape') {
      const target = lengths.get(node.input[1] ?? '') ?? ints(getAttribute(node, 'shape'))?.length;
      if (target !== undefined) ranks.set(out, target);
      continue;
    }
    const rule = node.domain === '' || node.domain === 'ai.onnx' ? RULES[node.opType] : undefined;
    const rank = rule?.(
      node.input.map((name) => ranks.get(name)),
      node,
    );
    if (rank !== undefined && !ranks.has(out)) ranks.set(out, rank);
  }
  return ranks;
}
