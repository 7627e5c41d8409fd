import type { NodeProto } from 'onnx-buf';
import { getAttribute } from '../onnx/index.js';

/**
 * Which ops static QDQ quantisation touches, and how. Only ops ONNX Runtime 1.30's CPU provider fuses with their
 * surrounding DequantizeLinear/QuantizeLinear are listed (onnxruntime/core/optimizer/qdq_transformer/
 * selectors_actions/qdq_selector_action_transformer.cc): a Q/DQ pair around anything else would only add work.
 *
 * - weighted: Conv → QLinearConv, MatMul → QLinearMatMul or MatMulIntegerToFloat, Gemm → QGemm ("ConvQDQRules",
 *   "MatMulQDQRules", "GemmQDQRules"). The weight (and bias) become constant integer initializers behind a DQ.
 * - qlinear: own output scale, inputs quantised as they are: Add, Mul → QLinearAdd/QLinearMul ("BinaryOpQDQRules");
 *   Concat → QLinearConcat ("VariadicOpQDQRules"); AveragePool, GlobalAveragePool, LeakyRelu, Sigmoid → QLinear*
 *   ("UnaryOpQDQRules"). Softmax is there too but left out: its [0, 1] output quantised per tensor loses the small
 *   probabilities attention depends on.
 * - shared: data movement, fused only when DQ and Q carry the same scale and zero point ("DropQDQNodesRules":
 *   Reshape, Flatten, Transpose, Squeeze, Unsqueeze, Resize; MaxPool from opset 12, whose int8 kernel exists only
 *   there), so the output reuses the input's parameters.
 * - removable: Relu and Clip right after a quantised node disappear into its output's Q, whose saturation does the
 *   clamping (ORT's quantiser, `QDQRemovableActivation`; the runtime's ReluQuantFusion/ClipQuantFusion agree).
 *
 * HardSigmoid, Div, Softmax and the like stay float: ORT has no QDQ form for them.
 */
export type QdqKind = 'weighted' | 'qlinear' | 'shared' | 'removable';

export interface QdqOp {
  readonly kind: QdqKind;
  /** qlinear: the inputs that are activations to quantise ('all' for variadic Concat). */
  readonly inputs?: readonly number[] | 'all';
  /** Lowest default-domain opset at which ORT has the integer kernel. */
  readonly minOpset?: number;
  /** weighted: the output must be quantised for the fusion to happen (QLinearConv has no float output). */
  readonly outputRequired?: boolean;
}

export const QDQ_OPS: Readonly<Record<string, QdqOp>> = Object.freeze({
  Conv: { kind: 'weighted', outputRequired: true },
  MatMul: { kind: 'weighted', outputRequired: false },
  Gemm: { kind: 'weighted', outputRequired: false },
  Add: { kind: 'qlinear', inputs: [0, 1] },
  Mul: { kind: 'qlinear', inputs: [0, 1] },
  Concat: { kind: 'qlinear', inputs: 'all' },
  AveragePool: { kind: 'qlinear', inputs: [0] },
  GlobalAveragePool: { kind: 'qlinear', inputs: [0] },
  LeakyRelu: { kind: 'qlinear', inputs: [0] },
  Sigmoid: { kind: 'qlinear', inputs: [0] },
  MaxPool: { kind: 'shared', minOpset: 12 },
  Reshape: { kind: 'shared' },
  Flatten: { kind: 'shared' },
  Transpose: { kind: 'shared' },
  Squeeze: { kind: 'shared' },
  Unsqueeze: { kind: 'shared' },
  Resize: { kind: 'shared', minOpset: 11 },
  Relu: { kind: 'removable' },
  Clip: { kind: 'removable' },
} satisfies Record<string, QdqOp>);

/** Ops calibration should also see, because quantisation rewrites them first (BatchNorm folds into Conv; a Div by a
 * constant becomes a Mul). */
export const PREPARED_OPS: ReadonlySet<string> = new Set(['BatchNormalization', 'Div']);

export function qdqOp(node: NodeProto): QdqOp | undefined {
  return node.domain === '' || node.domain === 'ai.onnx' ? QDQ_OPS[node.opType] : undefined;
}

/** Per-output-channel axis of a weight ([ONNX Operators.md]): Conv W is [M, C/group, k…] (axis 0); MatMul B is
 * [K, N] (axis 1); Gemm B is [K, N], or [N, K] when transB = 1. */
export function channelAxis(node: NodeProto): number {
  if (node.opType === 'Conv') return 0;
  if (node.opType === 'Gemm') return Number(getAttribute(node, 'transB')?.i ?? 0n) === 1 ? 0 : 1;
  return 1;
}

/** Input indices of `node` whose float values static quantisation needs ranges for. */
export function activationInputs(node: NodeProto, op: QdqOp): number[] {
  if (op.kind === 'weighted' || op.kind === 'shared' || op.kind === 'removable') return [0];
  if (op.inputs === 'all') return node.input.map((_, i) => i);
  return [...(op.inputs ?? [0])];
}
