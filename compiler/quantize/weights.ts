import { OutpostError } from '../../runtime/errors.js';
import {
  computeQuantParams,
  minMax,
  quantArray,
  quantizeValue,
  quantRange,
  roundHalfEven,
  type QuantArray,
  type QuantParams,
  type QuantType,
} from './params.js';

/**
 * Weights and biases of Conv, MatMul and Gemm, per tensor or per output channel ([ONNX Operators.md,
 * DequantizeLinear-13] "axis: the axis of the dequantizing dimension of the input tensor … for per-axis
 * quantization"). Per channel, each slice along `axis` gets its own scale and zero point
 * ([quant_utils.py, quantize_onnx_initializer]: each `weight_data.take(i, axis)` is quantised on its own).
 */
export interface WeightOptions {
  readonly type: QuantType;
  readonly symmetric: boolean;
  readonly reduceRange: boolean;
  /** Channel axis; undefined quantises per tensor. */
  readonly axis?: number;
}

export interface WeightParams {
  /** One entry per channel, or one for the tensor. */
  readonly scales: Float32Array;
  readonly zeroPoints: QuantArray;
  readonly axis: number | undefined;
}

export interface QuantizedWeight extends WeightParams {
  readonly data: QuantArray;
}

/** Visits the flat indices of each channel: outer × (channel) × inner layout of a row-major tensor. */
function channelLayout(dims: readonly number[], axis: number): { outer: number; channels: number; inner: number } {
  if (!Number.isInteger(axis) || axis < 0 || axis >= dims.length) {
    throw new OutpostError('INVALID_ARGUMENT', `channel axis ${axis} is outside a rank-${dims.length} weight`, {
      details: { axis, dims },
    });
  }
  const product = (list: readonly number[]): number => list.reduce((a, b) => a * b, 1);
  return {
    outer: product(dims.slice(0, axis)),
    channels: dims[axis] as number,
    inner: product(dims.slice(axis + 1)),
  };
}

function forEachInChannel(
  layout: { outer: number; channels: number; inner: number },
  channel: number,
  visit: (index: number) => void,
): void {
  const { channels, inner } = layout;
  for (let o = 0; o < layout.outer; o++) {
    const base = (o * channels + channel) * inner;
    for (let i = 0; i < inner; i++) visit(base + i);
  }
}

function paramsFor(lo: number, hi: number, options: WeightOptions): QuantParams {
  return computeQuantParams(lo, hi, quantRange(options.type, options), options.symmetric);
}

/** Scales and zero points for a weight tensor (from its own min and max, as weights need no calibration). */
export function weightParams(values: Float32Array, dims: readonly number[], options: WeightOptions): WeightParams {
  if (options.axis === undefined) {
    const [lo, hi] = minMax(values);
    const p = paramsFor(lo, hi, options);
    const zeroPoints = quantArray(options.type, 1);
    zeroPoints[0] = p.zeroPoint;
    return { scales: Float32Array.of(p.scale), zeroPoints, axis: undefined };
  }
  const layout = channelLayout(dims, options.axis);
  const scales = new Float32Array(layout.channels);
  const zeroPoints = quantArray(options.type, layout.channels);
  for (let c = 0; c < layout.channels; c++) {
    let lo = Infinity;
    let hi = -Infinity;
    forEachInChannel(layout, c, (i) => {
      const v = values[i] as number;
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    });
    const p = lo > hi ? paramsFor(0, 0, options) : paramsFor(lo, hi, options);
    scales[c] = p.scale;
    zeroPoints[c] = p.zeroPoint;
  }
  return { scales, zeroPoints, axis: options.axis };
}

/** Quantises a weight tensor with given parameters (possibly adjusted for the bias, below). */
export function applyWeightParams(
  values: Float32Array,
  dims: readonly number[],
  params: WeightParams,
  type: QuantType,
): QuantizedWeight {
  const data = quantArray(type, values.length);
  if (params.axis === undefined) {
    const p = { scale: params.scales[0] as number, zeroPoint: params.zeroPoints[0] as number };
    for (let i = 0; i < values.length; i++) data[i] = quantizeValue(values[i] as number, p, type);
  } else {
    const layout = channelLayout(dims, params.axis);
    for (let c = 0; c < layout.channels; c++) {
      const p = { scale: params.scales[c] as number, zeroPoint: params.zeroPoints[c] as number };
      forEachInChannel(layout, c, (i) => {
        data[i] = quantizeValue(values[i] as number, p, type);
      });
    }
  }
  return { ...params, data };
}

export function quantizeWeight(values: Float32Array, dims: readonly number[], options: WeightOptions): QuantizedWeight {
  return applyWeightParams(values, dims, weightParams(values, dims, options), options.type);
}

const INT32_MAX = 2 ** 31 - 1;
const INT32_MIN = -(2 ** 31);
/** Headroom kept below int32's limit when a bias forces a larger weight scale. */
const BIAS_HEADROOM = 2; // ×

/**
 * Bias scale per channel must be input_scale × weight_scale ([ONNX Operators.md, QLinearConv] "bias … quantized
 * with scale = x_scale * w_scale and zero point 0"). A channel whose weights are tiny (BatchNorm folded with γ ≈ 0)
 * gets a tiny weight scale, and its bias then overflows int32; ORT's quantiser raises such weight scales
 * (qdq_quantizer.py, `_adjust_weight_scale_for_int32_bias`). This does the same: each weight scale becomes at least
 * |bias| × headroom / (input_scale × int32 max). Returns the params unchanged when no channel needs it.
 */
export function adjustForBias(params: WeightParams, bias: Float32Array, inputScale: number): WeightParams {
  let scales: Float32Array | undefined;
  const channelOf = (i: number): number => (params.scales.length === 1 ? 0 : i);
  for (let i = 0; i < bias.length; i++) {
    const c = channelOf(i);
    const current = (scales ?? params.scales)[c] as number;
    const needed = Math.fround((Math.abs(bias[i] as number) * BIAS_HEADROOM) / (inputScale * INT32_MAX));
    if (needed > current) {
      scales ??= Float32Array.from(params.scales);
      scales[c] = needed;
    }
  }
  return scales === undefined ? params : { ...params, scales };
}

export interface QuantizedBias {
  readonly data: Int32Array;
  /** input_scale × weight_scale, per channel (or one). */
  readonly scales: Float32Array;
  /** Channels whose quantised bias had to be clipped to int32. */
  readonly clipped: number;
}

/**
 * [base_quantizer.py, quantize_bias_static_impl] bias_scale = input_scale × weight_scale (float32 product), values
 * divided in float64, rounded half to even and clipped to int32; zero point 0.
 */
export function quantizeBias(bias: Float32Array, inputScale: number, weightScales: Float32Array): QuantizedBias {
  const perChannel = weightScales.length > 1;
  if (perChannel && weightScales.length !== bias.length) {
    throw new OutpostError(
      'INVALID_ARGUMENT',
      `bias has ${bias.length} values but the weight has ${weightScales.length} channel scales`,
      { details: { bias: bias.length, channels: weightScales.length } },
    );
  }
  const scales = perChannel
    ? Float32Array.from(weightScales, (w) => Math.fround(inputScale * w))
    : Float32Array.of(Math.fround(inputScale * (weightScales[0] as number)));
  const data = new Int32Array(bias.length);
  let clipped = 0;
  for (let i = 0; i < bias.length; i++) {
    const scale = (perChannel ? scales[i] : scales[0]) as number;
    let q = roundHalfEven((bias[i] as number) / scale);
    if (q > INT32_MAX || q < INT32_MIN) {
      clipped += 1;
      q = q > 0 ? INT32_MAX : INT32_MIN;
    }
    data[i] = q;
  }
  return { data, scales, clipped };
}
