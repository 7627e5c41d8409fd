import type { GraphProto, NodeProto } from 'onnx-buf';
import type { TensorSpec } from '../../runtime/artifact/index.js';
import { type Feeds, concreteShape } from '../../runtime/model/index.js';
import { type DType, type TensorData, elementCount, seededRandom, zeros } from '../../runtime/tensor/index.js';
import { consumers, getAttribute, mainGraph, toFloat16Bits, valueTypes, type OnnxModel } from '../onnx/index.js';

/**
 * Synthetic inputs that respect what each input means. A float input gets roughly unit-scale noise (the range of
 * normalised model inputs); an integer or bool input gets values chosen by what consumes it, per the ONNX operator
 * spec: a repeat count (Tile) is small and positive, a `k` (TopK) at most the axis it selects from, an index
 * (Gather, GatherElements, OneHot, …) below the size of the axis it indexes, a shape fed to Reshape is the data's
 * own shape, one fed to Expand broadcasts (ones), a divisor (integer Div/Mod) is non-zero, a Dropout ratio is
 * below 1 and its training flag off. Integers nobody explains are small and non-negative.
 *
 * A draw can still be one the model rejects (a Split that must sum to its axis, an index into a dimension ORT
 * could not infer): the compiler runs the original on each draw and, when one is rejected, tries the next
 * flavour (`FLAVOURS`: the semantic draw, then all-ones, then zeros) before giving up on synthetic grading.
 */
export type Flavour = 'semantic' | 'ones' | 'zeros';
export const FLAVOURS: readonly Flavour[] = Object.freeze(['semantic', 'ones', 'zeros']);

/** What a value means to the node input it feeds. */
type Role =
  | { readonly kind: 'count' } // ≥ 1, small
  | { readonly kind: 'k'; readonly data: number; readonly axis: string; readonly axisDefault: number }
  | { readonly kind: 'index'; readonly data: number; readonly axis?: string; readonly axisDefault: number }
  | { readonly kind: 'broadcast-shape' } // all ones
  | { readonly kind: 'same-shape'; readonly data: number } // the data input's own shape
  | { readonly kind: 'size' } // a small positive extent
  | { readonly kind: 'small' } // a small non-negative amount: 0 or 1 (zeros flavour: 0)
  | { readonly kind: 'axes' } // 0, 1, … distinct
  | { readonly kind: 'divisor' } // non-zero
  | { readonly kind: 'ratio' } // in [0, 0.5)
  | { readonly kind: 'value'; readonly value: number }
  | { readonly kind: 'split'; readonly data: number; readonly axis: string };

/** Node input index → role, per op type (ONNX Operators.md). Inputs not listed mean nothing in particular. */
const ROLES: Readonly<Record<string, Readonly<Record<number, Role>>>> = Object.freeze({
  Tile: { 1: { kind: 'count' } },
  TopK: { 1: { kind: 'k', data: 0, axis: 'axis', axisDefault: -1 } },
  Gather: { 1: { kind: 'index', data: 0, axis: 'axis', axisDefault: 0 } },
  GatherElements: { 1: { kind: 'index', data: 0, axis: 'axis', axisDefault: 0 } },
  ScatterElements: { 1: { kind: 'index', data: 0, axis: 'axis', axisDefault: 0 } },
  Scatter: { 1: { kind: 'index', data: 0, axis: 'axis', axisDefault: 0 } },
  GatherND: { 1: { kind: 'index', data: 0, axisDefault: 0 } },
  ScatterND: { 1: { kind: 'index', data: 0, axisDefault: 0 } },
  OneHot: { 0: { kind: 'value', value: 1 }, 1: { kind: 'size' } },
  Expand: { 1: { kind: 'broadcast-shape' } },
  Reshape: { 1: { kind: 'same-shape', data: 0 } },
  Resize: { 2: { kind: 'value', value: 1 }, 3: { kind: 'same-shape', data: 0 } },
  Upsample: { 1: { kind: 'value', value: 1 } },
  CenterCropPad: { 1: { kind: 'same-shape', data: 0 } },
  ConstantOfShape: { 0: { kind: 'size' } },
  Range: { 0: { kind: 'value', value: 0 }, 1: { kind: 'value', value: 4 }, 2: { kind: 'value', value: 1 } },
  Slice: {
    1: { kind: 'value', value: 0 },
    2: { kind: 'value', value: 1_000_000 },
    3: { kind: 'axes' },
    4: { kind: 'value', value: 1 },
  },
  Pad: { 1: { kind: 'small' }, 3: { kind: 'axes' } },
  Squeeze: { 1: { kind: 'axes' } },
  Unsqueeze: { 1: { kind: 'axes' } },
  ReduceMax: { 1: { kind: 'axes' } },
  ReduceMin: { 1: { kind: 'axes' } },
  ReduceMean: { 1: { kind: 'axes' } },
  ReduceSum: { 1: { kind: 'axes' } },
  ReduceProd: { 1: { kind: 'axes' } },
  ReduceL1: { 1: { kind: 'axes' } },
  ReduceL2: { 1: { kind: 'axes' } },
  ReduceLogSum: { 1: { kind: 'axes' } },
  ReduceLogSumExp: { 1: { kind: 'axes' } },
  ReduceSumSquare: { 1: { kind: 'axes' } },
  Split: { 1: { kind: 'split', data: 0, axis: 'axis' } },
  SplitToSequence: { 1: { kind: 'split', data: 0, axis: 'axis' } },
  Div: { 1: { kind: 'divisor' } },
  Mod: { 1: { kind: 'divisor' } },
  Dropout: { 1: { kind: 'ratio' }, 2: { kind: 'value', value: 0 } },
  CumSum: { 1: { kind: 'value', value: 0 } },
  Trilu: { 1: { kind: 'value', value: 0 } },
  RoiAlign: { 2: { kind: 'value', value: 0 } },
  NonMaxSuppression: {
    2: { kind: 'value', value: 3 },
    3: { kind: 'value', value: 0.5 },
    4: { kind: 'value', value: 0 },
  },
  HannWindow: { 0: { kind: 'value', value: 8 } },
  HammingWindow: { 0: { kind: 'value', value: 8 } },
  BlackmanWindow: { 0: { kind: 'value', value: 8 } },
  MelWeightMatrix: {
    0: { kind: 'value', value: 8 }, // num_mel_bins
    1: { kind: 'value', value: 16 }, // dft_length
    2: { kind: 'value', value: 8000 }, // sample_rate, Hz
    3: { kind: 'value', value: 0 }, // lower_edge_hertz
    4: { kind: 'value', value: 4000 }, // upper_edge_hertz (Nyquist)
  },
  STFT: { 1: { kind: 'value', value: 4 }, 3: { kind: 'value', value: 8 } },
  DFT: { 1: { kind: 'value', value: 8 } },
});

/** Ops that hand their first input's values on unchanged (or re-typed): the role is found past them. */
const PASS_THROUGH: ReadonlySet<string> = new Set(['Cast', 'CastLike', 'Identity', 'Squeeze', 'Unsqueeze', 'Flatten']);

const INTEGER_DTYPES: ReadonlySet<DType> = new Set([
  'int8',
  'uint8',
  'int16',
  'uint16',
  'int32',
  'uint32',
  'int64',
  'uint64',
]);

interface Use {
  readonly node: NodeProto;
  readonly index: number;
  readonly role: Role;
}

/** The role of each use of `name`, looking through pass-through ops (depth-bounded). */
function roles(name: string, uses: ReadonlyMap<string, NodeProto[]>, depth = 0): Use[] {
  const found: Use[] = [];
  for (const node of uses.get(name) ?? []) {
    node.input.forEach((input, index) => {
      if (input !== name) return;
      const role = ROLES[node.opType]?.[index];
      if (role !== undefined && node.domain === '') found.push({ node, index, role });
      else if (PASS_THROUGH.has(node.opType) && index === 0 && depth < 4)
        for (const out of node.output) found.push(...roles(out, uses, depth + 1));
    });
  }
  return found;
}

/** Known dims of a value: a fed input's concrete shape, else what the graph declares (numbers only). */
type DimsOf = (name: string) => readonly number[] | undefined;

function axisOf(node: NodeProto, attr: string | undefined, fallback: number, rank: number): number {
  const a = attr === undefined ? undefined : getAttribute(node, attr);
  const axis = a === undefined ? fallback : Number(a.i);
  return axis < 0 ? axis + rank : axis;
}

/** The values a role calls for, `count` of them; undefined when it cannot say (the generic draw is used). */
function roleValues(
  use: Use,
  count: number,
  dimsOf: DimsOf,
  flavour: Flavour,
  random: () => number,
): number[] | undefined {
  const { role, node } = use;
  const dataDims = 'data' in role ? dimsOf(node.input[role.data] ?? '') : undefined;
  switch (role.kind) {
    case 'count':
      return Array.from({ length: count }, () => (flavour === 'semantic' ? 1 + Math.floor(random() * 2) : 1));
    case 'k': {
      if (dataDims === undefined) return Array<number>(count).fill(1);
      const dim = dataDims[axisOf(node, role.axis, role.axisDefault, dataDims.length)] ?? 1;
      return Array<number>(count).fill(Math.max(0, Math.min(dim, flavour === 'semantic' ? 2 : 1)));
    }
    case 'index': {
      const axis = dataDims === undefined ? 0 : axisOf(node, role.axis, role.axisDefault, dataDims.length);
      // GatherND/ScatterND index every leading axis: bound by the smallest of them.
      const bound =
        dataDims === undefined ? 1 : role.axis === undefined ? Math.min(...dataDims, 1e9) : (dataDims[axis] ?? 1);
      return Array.from({ length: count }, () =>
        flavour === 'semantic' ? Math.floor(random() * Math.max(bound, 1)) : 0,
      );
    }
    case 'broadcast-shape':
      return Array<number>(count).fill(1);
    case 'same-shape':
      if (dataDims?.length === count) return [...dataDims];
      // Reshape to [1, …, 1, -1] fits any data (Reshape: "-1 … inferred from the size of the tensor").
      return node.opType === 'Reshape' && count >= 1 ? [...Array<number>(count - 1).fill(1), -1] : undefined;
    case 'size':
      return Array.from({ length: count }, () => (flavour === 'semantic' ? 1 + Math.floor(random() * 3) : 1));
    case 'small':
      return Array.from({ length: count }, () =>
        flavour === 'semantic' ? Math.floor(random() * 2) : flavour === 'ones' ? 1 : 0,
      );
    case 'axes':
      return Array.from({ length: count }, (_, i) => i);
    case 'divisor':
      return Array.from({ length: count }, () => 1 + Math.floor(random() * 3));
    case 'ratio':
      return Array.from({ length: count }, () => random() * 0.5);
    case 'value':
      return Array<number>(count).fill(role.value);
    case 'split': {
      if (dataDims === undefined) return undefined;
      const dim = dataDims[axisOf(node, role.axis, 0, dataDims.length)];
      if (dim === undefined || count === 0) return undefined;
      // Parts that sum to the axis (Split: "the sum of split values must equal the dim"), the remainder up front.
      const base = Math.floor(dim / count);
      return Array.from({ length: count }, (_, i) => base + (i < dim % count ? 1 : 0));
    }
  }
}

function fill(data: TensorData, values: readonly number[]): void {
  if (Array.isArray(data)) return;
  if (data instanceof BigInt64Array || data instanceof BigUint64Array) {
    values.forEach((v, i) => (data[i] = BigInt(Math.trunc(v))));
    return;
  }
  values.forEach((v, i) => (data[i] = v));
}

/** The default for a value no role explains. */
function generic(dtype: DType, data: TensorData, flavour: Flavour, random: () => number): void {
  const n = data.length;
  const float = (): number => (flavour === 'semantic' ? random() * 2 - 1 : 0.1 + random() * 0.8);
  if (data instanceof Float32Array || data instanceof Float64Array) {
    for (let i = 0; i < n; i++) data[i] = float();
  } else if (dtype === 'float16') {
    const half = data as Uint16Array; // IEEE half bits (DTYPES: float16 is a Uint16Array)
    for (let i = 0; i < n; i++) half[i] = toFloat16Bits(float());
  } else if (dtype === 'string') {
    // Numbers as text: what a string input most often carries (Cast from STRING parses them), and still text.
    const strings = data as string[];
    for (let i = 0; i < n; i++) strings[i] = String(Math.round(float() * 100) / 100);
  } else if (dtype === 'bool') {
    for (let i = 0; i < n; i++) (data as Uint8Array)[i] = flavour === 'semantic' && random() < 0.5 ? 1 : 0;
  } else if (INTEGER_DTYPES.has(dtype)) {
    const value = (): number => (flavour === 'semantic' ? Math.floor(random() * 3) : flavour === 'ones' ? 1 : 0);
    fill(
      data,
      Array.from({ length: n }, () => value()),
    );
  }
}

export interface SyntheticOptions {
  readonly inputs: readonly TensorSpec[];
  readonly bindings: Readonly<Record<string, number>>;
  readonly count: number;
  readonly seed: number;
  readonly flavour: Flavour;
}

/** `count` synthetic samples for `model` (see the module comment). */
export function syntheticSamples(model: OnnxModel, options: SyntheticOptions): Feeds[] {
  const graph: GraphProto = mainGraph(model.proto);
  const uses = consumers(graph);
  const declared = valueTypes(graph);
  const fed = new Map(options.inputs.map((spec) => [spec.name, concreteShape(spec, options.bindings)]));
  const dimsOf: DimsOf = (name) => {
    const dims = fed.get(name) ?? declared.get(name)?.shape;
    return dims?.every((d): d is number => typeof d === 'number') === true ? dims : undefined;
  };
  const random = seededRandom(options.seed);
  const inputRoles = new Map(options.inputs.map((spec) => [spec.name, roles(spec.name, uses)]));
  return Array.from({ length: options.count }, () => {
    const feeds: Record<string, { data: TensorData; dims: number[]; type: DType }> = {};
    for (const spec of options.inputs) {
      const dims = fed.get(spec.name) ?? [];
      const data = zeros(spec.dtype, elementCount(dims));
      const use = inputRoles.get(spec.name)?.[0];
      const values = use === undefined ? undefined : roleValues(use, data.length, dimsOf, options.flavour, random);
      if (values === undefined) generic(spec.dtype, data, options.flavour, random);
      else fill(data, values);
      feeds[spec.name] = { data, dims, type: spec.dtype };
    }
    return feeds;
  });
}
