import type { DType, TensorData } from '../tensor/dtype.js';
import { fromBfloat16Bits, fromFloat16Bits } from '../tensor/float16.js';

/**
 * How a tensor splits into the features drift is measured on, the same way at compile time (the baseline) and on
 * the device (the live window), so the two always describe the same numbers:
 *
 * - `channel`: an image-like tensor (rank 4, a channel axis of 1–4 at position 1 for NCHW or 3 for NHWC): one
 *   feature per channel, the distribution of its pixel values (SageMaker Model Monitor's per-feature statistics,
 *   applied to the only features an image has without a model of its own).
 * - `element`: a small vector (rank 1–2, at most MAX_ELEMENT_FEATURES values per row): one feature per position.
 * - `tensor`: anything else: one feature, all the tensor's values.
 */
export type FeatureKind = 'channel' | 'element' | 'tensor';

/** A row of at most this many values is described element by element. */
export const MAX_ELEMENT_FEATURES = 32;
/** Values read per feature per row and call: bounds the hot-path cost whatever the tensor's size (strided). */
export const VALUES_PER_FEATURE = 32;

export interface FeatureLayout {
  readonly tensor: string;
  readonly kind: FeatureKind;
  /** Feature names, in index order: `image[c0]`, `x[3]`, `logits`. */
  readonly names: readonly string[];
  /** `channel` layouts: where the channels are (1: NCHW, 3: NHWC). */
  readonly channelAxis?: 1 | 3;
}

/** The layout of a tensor of these (concrete) dims; `layout` comes from the artifact's image pre-processing. */
export function featureLayout(tensor: string, dims: readonly number[], layout?: 'NCHW' | 'NHWC'): FeatureLayout {
  const channelAxis = imageChannelAxis(dims, layout);
  if (channelAxis !== undefined) {
    const channels = dims[channelAxis] ?? 1;
    return {
      tensor,
      kind: 'channel',
      names: Array.from({ length: channels }, (_, c) => `${tensor}[c${c}]`),
      channelAxis,
    };
  }
  const row = rowLength(dims);
  if (dims.length >= 1 && dims.length <= 2 && row >= 1 && row <= MAX_ELEMENT_FEATURES) {
    return { tensor, kind: 'element', names: Array.from({ length: row }, (_, i) => `${tensor}[${i}]`) };
  }
  return { tensor, kind: 'tensor', names: [tensor] };
}

function imageChannelAxis(dims: readonly number[], layout: 'NCHW' | 'NHWC' | undefined): 1 | 3 | undefined {
  if (dims.length !== 4) return undefined;
  const fits = (axis: 1 | 3) => {
    const channels = dims[axis] ?? 0;
    return channels >= 1 && channels <= 4;
  };
  if (layout !== undefined) {
    const axis = layout === 'NHWC' ? 3 : 1;
    return fits(axis) ? axis : undefined;
  }
  return fits(1) ? 1 : fits(3) ? 3 : undefined;
}

function rowLength(dims: readonly number[]): number {
  if (dims.length === 0) return 1;
  return dims.length === 1 ? (dims[0] ?? 0) : (dims[1] ?? 0);
}

/** Reads element `i` as a number (float16/bfloat16 travel as bit patterns; 64-bit integers as bigint). */
export function elementReader(type: DType | undefined, data: Exclude<TensorData, string[]>): (i: number) => number {
  if (type === 'float16') return (i) => fromFloat16Bits(Number(data[i]));
  if (type === 'bfloat16') return (i) => fromBfloat16Bits(Number(data[i]));
  return (i) => Number(data[i]);
}

/**
 * Calls `visit(feature, value)` for up to `perFeature` values of each feature of each row, strided over the
 * feature's values (the serving side precomputes these positions once, samplePlan, and shifts them per call).
 * Non-finite values are skipped: they are the guardrails' business, not a distribution's.
 */
export function visitFeatures(
  layout: FeatureLayout,
  dims: readonly number[],
  read: (i: number) => number,
  total: number,
  visit: (feature: number, value: number) => void,
  perFeature = VALUES_PER_FEATURE,
): void {
  const emit = (feature: number, i: number) => {
    const v = read(i);
    if (Number.isFinite(v)) visit(feature, v);
  };
  if (layout.kind === 'element') {
    const row = layout.names.length;
    for (let start = 0; start + row <= total; start += row) for (let f = 0; f < row; f++) emit(f, start + f);
    return;
  }
  if (layout.kind === 'tensor') {
    strided(total, perFeature, (i) => emit(0, i));
    return;
  }
  const channels = layout.names.length;
  const nchw = layout.channelAxis !== 3;
  const batch = dims[0] ?? 1;
  const plane = total / Math.max(1, batch * channels);
  for (let b = 0; b < batch; b++) {
    for (let c = 0; c < channels; c++) {
      if (nchw) {
        const base = (b * channels + c) * plane;
        strided(plane, perFeature, (i) => emit(c, base + i));
      } else {
        const base = b * plane * channels;
        strided(plane, perFeature, (i) => emit(c, base + i * channels + c));
      }
    }
  }
}

/** Visits `count` positions of [0, length) evenly spaced from 0: all of them when length <= count. */
function strided(length: number, count: number, visit: (i: number) => void): void {
  if (length <= count) {
    for (let i = 0; i < length; i++) visit(i);
    return;
  }
  const step = length / count;
  for (let k = 0; k < count; k++) visit(Math.floor(k * step));
}

/**
 * The positions visitFeatures reads, precomputed once per shape for the hot path. A call shifts them all
 * by `(offset % step) * stride`, which keeps each inside its feature (strided features only; `step` 1 otherwise).
 */
export interface SamplePlan {
  readonly feature: Int32Array;
  readonly index: Int32Array;
  readonly step: number;
  readonly stride: number;
}

export function samplePlan(
  layout: FeatureLayout,
  dims: readonly number[],
  total: number,
  perFeature = VALUES_PER_FEATURE,
): SamplePlan {
  const features: number[] = [];
  const indices: number[] = [];
  const record = (f: number, i: number) => {
    features.push(f);
    indices.push(i);
  };
  visitFeatures(layout, dims, (i) => i, total, record, perFeature);
  const length =
    layout.kind === 'tensor'
      ? total
      : layout.kind === 'channel'
        ? total / Math.max(1, (dims[0] ?? 1) * layout.names.length)
        : 0;
  return {
    feature: Int32Array.from(features),
    index: Int32Array.from(indices),
    step: length > perFeature ? Math.floor(length / perFeature) : 1,
    stride: layout.kind === 'channel' && layout.channelAxis === 3 ? layout.names.length : 1,
  };
}
