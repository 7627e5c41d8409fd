import { create } from '@bufbuild/protobuf';
import { AttributeProto_AttributeType, NodeProtoSchema, type GraphProto, type NodeProto } from 'onnx-buf';
import type { DType } from '../../runtime/tensor/index.js';
import { float32ToFloat16, getAttribute, makeAttribute, type NameGenerator } from '../onnx/index.js';
import { addInitializer } from './constants.js';

/**
 * ONNX operator schema versions up to opset 13, per [onnx docs/Changelog.md], and what to do where a newer
 * schema reads an old node differently. A version without an entry in `changes` accepts every node the previous
 * one did (new types, new optional attributes or inputs with defaults that keep the old behaviour). A string
 * change means "cannot be converted" and says why.
 */
export const UPGRADE_TARGET_MAX = 13;

export interface ConvertContext {
  readonly graph: GraphProto;
  readonly names: NameGenerator;
  readonly ranks: ReadonlyMap<string, number>;
  readonly dtypes: ReadonlyMap<string, DType | undefined>;
}

/** Plans a rewrite: returns the edit to apply, or why the node cannot be converted. Planning edits nothing. */
export type Converter = (node: NodeProto, ctx: ConvertContext) => string | (() => void);

export interface OpHistory {
  readonly versions: readonly number[];
  readonly changes?: Readonly<Record<number, Converter | string>>;
}

const ints = (node: NodeProto, name: string): bigint[] | undefined => getAttribute(node, name)?.ints;

function dropAttributes(node: NodeProto, names: readonly string[]): void {
  node.attribute = node.attribute.filter((a) => !names.includes(a.name));
}

/** An int64 1-D initializer in the node's graph; returns its name. */
function int64Input(ctx: ConvertContext, node: NodeProto, what: string, values: readonly bigint[]): string {
  const name = ctx.names.value(`${node.name || node.opType}_${what}`);
  return addInitializer(ctx.graph, name, BigInt64Array.from(values), [values.length], 'int64');
}

/** A scalar initializer of a float dtype (Clip bounds, Pad value). */
function floatScalar(ctx: ConvertContext, node: NodeProto, what: string, value: number, dtype: DType): string {
  const name = ctx.names.value(`${node.name || node.opType}_${what}`);
  const data =
    dtype === 'float16'
      ? float32ToFloat16(Float32Array.of(value))
      : dtype === 'float64'
        ? Float64Array.of(value)
        : Float32Array.of(value);
  return addInitializer(ctx.graph, name, data, [], dtype);
}

const FLOAT_TYPES: ReadonlySet<DType> = new Set(['float32', 'float16', 'float64']);

/** Removes attributes an older schema had and the newer one dropped without changing results. */
const drop =
  (...names: string[]): Converter =>
  (node) =>
  () => {
    dropAttributes(node, names);
  };

/** [Add-7 …] numpy broadcasting replaced `broadcast`/`axis`; without `axis` the old rule was numpy's suffix rule. */
const legacyBroadcast: Converter = (node) =>
  getAttribute(node, 'axis') !== undefined
    ? 'uses the pre-opset-7 `axis` broadcast, which numpy-style broadcasting cannot express'
    : () => {
        dropAttributes(node, ['broadcast', 'axis']);
      };

/** An attribute that became the input at `index` (Reshape-5, Slice-10, TopK-10, Split-13, Squeeze-13 …). */
function attributesToInputs(...moves: readonly { attribute: string; index: number; required?: boolean }[]): Converter {
  return (node, ctx) => {
    const missing = moves.find((m) => m.required === true && getAttribute(node, m.attribute) === undefined);
    if (missing !== undefined) return `has no "${missing.attribute}" attribute to move into an input`;
    return () => {
      for (const move of moves) {
        const a = getAttribute(node, move.attribute);
        if (a === undefined) continue;
        const values = a.type === AttributeProto_AttributeType.INTS ? a.ints : [a.i];
        const input = int64Input(ctx, node, move.attribute, values);
        while (node.input.length < move.index) node.input.push('');
        node.input[move.index] = input;
      }
      dropAttributes(
        node,
        moves.map((m) => m.attribute),
      );
    };
  };
}

/** [Clip-11] min and max moved from attributes to optional inputs of the input's type. */
const clipToInputs: Converter = (node, ctx) => {
  const min = getAttribute(node, 'min');
  const max = getAttribute(node, 'max');
  if (min === undefined && max === undefined) return () => undefined;
  const dtype = ctx.dtypes.get(node.input[0] ?? '');
  if (dtype === undefined || !FLOAT_TYPES.has(dtype)) {
    return `needs its input's float type to turn min/max into inputs, found ${dtype ?? 'none'}`;
  }
  return () => {
    const x = node.input[0] ?? '';
    const lo = min === undefined ? '' : floatScalar(ctx, node, 'min', min.f, dtype);
    const hi = max === undefined ? '' : floatScalar(ctx, node, 'max', max.f, dtype);
    node.input = hi === '' ? [x, lo] : [x, lo, hi];
    dropAttributes(node, ['min', 'max']);
  };
};

/** [Pad-11] pads and value moved to inputs ([Pad-2] had renamed `paddings` to `pads`). */
const padToInputs: Converter = (node, ctx) => {
  const pads = ints(node, 'pads') ?? ints(node, 'paddings'); // planned before Pad-2's rename applies
  if (pads === undefined) return 'has no "pads" attribute';
  const value = getAttribute(node, 'value');
  const dtype = ctx.dtypes.get(node.input[0] ?? '');
  if (value !== undefined && value.f !== 0 && (dtype === undefined || !FLOAT_TYPES.has(dtype))) {
    return `needs its input's float type for the pad value, found ${dtype ?? 'none'}`;
  }
  return () => {
    const x = node.input[0] ?? '';
    const padsInput = int64Input(ctx, node, 'pads', pads);
    node.input =
      value === undefined || value.f === 0 || dtype === undefined
        ? [x, padsInput]
        : [x, padsInput, floatScalar(ctx, node, 'value', value.f, dtype)];
    dropAttributes(node, ['pads', 'paddings', 'value']);
  };
};

/** [Dropout-12] ratio became an input; inference ignores it, but it is kept for fidelity. */
const dropoutRatio: Converter = (node, ctx) => () => {
  const ratio = getAttribute(node, 'ratio');
  if (ratio !== undefined) node.input = [node.input[0] ?? '', floatScalar(ctx, node, 'ratio', ratio.f, 'float32')];
  dropAttributes(node, ['ratio']);
};

/**
 * [Softmax-13, LogSoftmax-13, Hardmax-13] "coerce the input into a 2-D tensor at `axis`, normalise rows" became
 * "normalise along `axis`". The two agree when axis is the last dimension. Otherwise (or when the rank is not known)
 * the old meaning is spelled out: Flatten(axis) → op along the last axis → Reshape back to Shape(x).
 */
const normaliseAlongAxis: Converter = (node, ctx) => {
  const x = node.input[0] ?? '';
  const y = node.output[0] ?? '';
  const axis = Number(getAttribute(node, 'axis')?.i ?? 1n); // default axis was 1 before opset 13
  const rank = ctx.ranks.get(x);
  if (axis === -1 || (rank !== undefined && (axis < 0 ? axis + rank : axis) === rank - 1)) {
    return () => {
      dropAttributes(node, ['axis']);
      node.attribute.push(makeAttribute('axis', axis));
    };
  }
  return () => {
    const stem = node.name || node.opType;
    const flat = ctx.names.value(`${x}_2d`);
    const out2d = ctx.names.value(`${y}_2d`);
    const shape = ctx.names.value(`${x}_shape`);
    const make = (opType: string, input: string[], output: string, attrs: Record<string, number> = {}): NodeProto =>
      create(NodeProtoSchema, {
        opType,
        name: ctx.names.node(`${stem}_${opType}`),
        input,
        output: [output],
        attribute: Object.entries(attrs).map(([k, v]) => makeAttribute(k, v)),
      });
    const index = ctx.graph.node.indexOf(node);
    ctx.graph.node.splice(index, 0, make('Flatten', [x], flat, { axis }), make('Shape', [x], shape));
    node.input[0] = flat;
    node.output[0] = out2d;
    dropAttributes(node, ['axis']);
    node.attribute.push(makeAttribute('axis', -1));
    ctx.graph.node.splice(ctx.graph.node.indexOf(node) + 1, 0, make('Reshape', [out2d, shape], y));
  };
};

/** [Resize-13] dropped the `tf_half_pixel_for_nn` coordinate mode; everything else reads the same. */
const resize13: Converter = (node) => {
  const mode = getAttribute(node, 'coordinate_transformation_mode');
  return mode !== undefined && new TextDecoder().decode(mode.s) === 'tf_half_pixel_for_nn'
    ? 'coordinate_transformation_mode "tf_half_pixel_for_nn" no longer exists at opset 13'
    : () => undefined;
};

const CONSUMED = drop('consumed_inputs'); // removed at opset 6 from the ops that had it; never affected results
const UNARY: OpHistory = { versions: [1, 6, 13], changes: { 6: CONSUMED } };
const ARITHMETIC: OpHistory = { versions: [1, 6, 7, 13], changes: { 6: CONSUMED, 7: legacyBroadcast } };
const LOGICAL: OpHistory = { versions: [1, 7], changes: { 7: legacyBroadcast } };
const COMPARISON: OpHistory = { versions: [1, 7, 9, 13], changes: { 7: legacyBroadcast } };
const REDUCE: OpHistory = { versions: [1, 11, 13] };
const VARIADIC: OpHistory = { versions: [1, 6, 8, 13], changes: { 6: CONSUMED } };
const SOFTMAX: OpHistory = { versions: [1, 11, 13], changes: { 13: normaliseAlongAxis } };
const ACTIVATION_6: OpHistory = { versions: [1, 6], changes: { 6: CONSUMED } };
const SINCE = (...versions: number[]): OpHistory => ({ versions });

/** Ops that share one history, named as a space-separated list. */
function group(history: OpHistory, ops: string): Record<string, OpHistory> {
  return Object.fromEntries(ops.split(' ').map((op) => [op, history]));
}

export const OPSET_HISTORY: Readonly<Record<string, OpHistory>> = Object.freeze({
  ...group(UNARY, 'Abs Ceil Exp Floor Log Neg Reciprocal Relu Sigmoid Sqrt Tanh'),
  ...group(ARITHMETIC, 'Add Sub Mul Div'),
  ...group(LOGICAL, 'And Or Xor'),
  ...group(COMPARISON, 'Greater Less'),
  ...group(VARIADIC, 'Sum Mean'),
  ...group({ versions: [1, 6, 8, 12, 13], changes: { 6: CONSUMED } }, 'Max Min'),
  ...group(ACTIVATION_6, 'Elu Selu LeakyRelu HardSigmoid InstanceNormalization'),
  ...group(REDUCE, 'ReduceMean ReduceMax ReduceMin ReduceProd ReduceL1 ReduceL2 ReduceLogSum ReduceLogSumExp'),
  ...group(REDUCE, 'ReduceSumSquare'),
  ...group(SOFTMAX, 'Softmax LogSoftmax Hardmax'),
  ...group(SINCE(1), 'Not Softplus Softsign GlobalAveragePool GlobalMaxPool LpNormalization'),
  ...group(SINCE(7), 'Sin Cos Tan Atan'),
  ...group(SINCE(9), 'Where ConstantOfShape EyeLike Shrink'),
  ...group(SINCE(9, 13), 'Erf Sign IsNaN NonZero MeanVarianceNormalization'),
  ...group(SINCE(10), 'IsInf ThresholdedRelu RoiAlign MatMulInteger ConvInteger QLinearConv QLinearMatMul'),
  ...group(SINCE(10, 13), 'QuantizeLinear DequantizeLinear Mod'),
  ...group(SINCE(11), 'Round Range CumSum Unique DynamicQuantizeLinear'),
  ...group(SINCE(11, 13), 'GatherElements ScatterElements ScatterND'),
  ...group(SINCE(12), 'GreaterOrEqual LessOrEqual Einsum Celu'),
  ...group(SINCE(1, 13), 'Identity Shape Size Transpose LRN SpaceToDepth'),
  ...group(SINCE(1, 11), 'Conv ConvTranspose'),
  ...group(SINCE(1, 11, 13), 'Gather If Loop'),
  ...group(SINCE(1, 11, 12, 13), 'ArgMax ArgMin'),
  ...group(SINCE(1, 7), 'LSTM RNN'),
  Pow: { versions: [1, 7, 12, 13], changes: { 7: legacyBroadcast } },
  Equal: { versions: [1, 7, 11, 13], changes: { 7: legacyBroadcast } },
  PRelu: { versions: [1, 6, 7, 9], changes: { 6: CONSUMED } },
  AveragePool: SINCE(1, 7, 10, 11),
  MaxPool: SINCE(1, 8, 10, 11, 12),
  Constant: SINCE(1, 9, 11, 12, 13),
  Expand: SINCE(8, 13),
  MatMul: SINCE(1, 9, 13),
  Flatten: SINCE(1, 9, 11, 13),
  GatherND: SINCE(11, 12, 13),
  DepthToSpace: SINCE(1, 11, 13),
  OneHot: SINCE(9, 11),
  NonMaxSuppression: SINCE(10, 11),
  Compress: SINCE(9, 11),
  GRU: SINCE(1, 3, 7),
  BatchNormalization: {
    versions: [1, 6, 7, 9],
    changes: {
      6: CONSUMED,
      7: drop('is_test'),
      // [BatchNormalization-9] `spatial` removed; spatial=1 was the default and is what opset 9 computes.
      9: (node) =>
        Number(getAttribute(node, 'spatial')?.i ?? 1n) === 1
          ? () => {
              dropAttributes(node, ['spatial']);
            }
          : 'uses spatial=0 (per-activation statistics), which opset 9 removed',
    },
  },
  Cast: { versions: [1, 6, 9, 13], changes: { 6: 'has its `to` attribute as a string (opset < 6)' } },
  Clip: { versions: [1, 6, 11, 12, 13], changes: { 6: CONSUMED, 11: clipToInputs } },
  Concat: {
    versions: [1, 4, 11, 13],
    changes: {
      // [Concat-4] axis became required; it defaulted to 1.
      4: (node) => () => {
        if (getAttribute(node, 'axis') === undefined) node.attribute.push(makeAttribute('axis', 1));
      },
    },
  },
  Gemm: { versions: [1, 6, 7, 9, 11, 13], changes: { 6: 'predates opset 6', 7: legacyBroadcast } },
  Dropout: { versions: [1, 6, 7, 10, 12, 13], changes: { 6: CONSUMED, 7: drop('is_test'), 12: dropoutRatio } },
  Reshape: {
    versions: [1, 5, 13],
    changes: { 5: attributesToInputs({ attribute: 'shape', index: 1, required: true }) },
  },
  Squeeze: { versions: [1, 11, 13], changes: { 13: attributesToInputs({ attribute: 'axes', index: 1 }) } },
  Unsqueeze: {
    versions: [1, 11, 13],
    changes: { 13: attributesToInputs({ attribute: 'axes', index: 1, required: true }) },
  },
  Slice: {
    versions: [1, 10, 11, 13],
    changes: {
      10: attributesToInputs(
        { attribute: 'starts', index: 1, required: true },
        { attribute: 'ends', index: 2, required: true },
        { attribute: 'axes', index: 3 },
      ),
    },
  },
  Split: {
    versions: [1, 2, 11, 13],
    changes: {
      2: (node) => (node.input.length > 1 ? 'takes `split` as an input, which opset 2 removed' : () => undefined),
      13: attributesToInputs({ attribute: 'split', index: 1 }),
    },
  },
  Pad: {
    versions: [1, 2, 11, 13],
    changes: {
      // [Pad-2] renamed `paddings` to `pads`.
      2: (node) => () => {
        const paddings = getAttribute(node, 'paddings');
        if (paddings !== undefined) paddings.name = 'pads';
      },
      11: padToInputs,
    },
  },
  Tile: { versions: [1, 6, 13], changes: { 6: 'takes tiles/axis inputs, which opset 6 replaced by repeats' } },
  TopK: { versions: [1, 10, 11], changes: { 10: attributesToInputs({ attribute: 'k', index: 1, required: true }) } },
  ReduceSum: { versions: [1, 11, 13], changes: { 13: attributesToInputs({ attribute: 'axes', index: 1 }) } },
  Resize: {
    versions: [10, 11, 13],
    changes: { 11: 'Resize-10 → 11 changed the coordinate transformation; re-export at opset ≥ 11', 13: resize13 },
  },
  Upsample: { versions: [7, 9, 10], changes: { 10: 'Upsample is deprecated from opset 10; re-export with Resize' } },
  Scan: { versions: [8, 9, 11], changes: { 9: 'Scan-8 had a batch axis that Scan-9 removed' } },
} satisfies Record<string, OpHistory>);
