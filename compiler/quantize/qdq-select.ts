import type { GraphProto, NodeProto } from 'onnx-buf';
import type { DType } from '../../runtime/tensor/index.js';
import type { TensorRange } from '../calibration/calibrators.js';
import { consumers, getAttribute, producers, type OnnxModel } from '../onnx/index.js';
import { readFloat32, type ConstantSource } from './constants.js';
import { activationInputs, qdqOp, type QdqOp } from './qdq-ops.js';

/**
 * Which nodes of the main graph static quantisation rewrites. Weighted nodes (Conv, MatMul, Gemm) are the seeds:
 * each is checked on its own and, if it cannot be quantised, reported with the reason. Data-movement and
 * element-wise ops then join only when they touch something already chosen (an input produced by, or an output read
 * by, a chosen node), repeated until nothing changes: an isolated QLinearAdd in a float neighbourhood costs a
 * Quantize and a Dequantize and buys nothing. Relu/Clip right behind a chosen node are folded into its output.
 */
export interface SelectionInput {
  readonly model: OnnxModel;
  readonly graph: GraphProto;
  readonly dtypes: ReadonlyMap<string, DType | undefined>;
  readonly ranges: ReadonlyMap<string, TensorRange>;
  readonly constants: ReadonlyMap<string, ConstantSource>;
  readonly opset: number;
  readonly exclude: ReadonlySet<string>;
  readonly opTypes: ReadonlySet<string> | undefined;
  /** Activations quantised symmetrically cannot absorb a Relu (their range always spans both signs). */
  readonly symmetricActivations: boolean;
}

export interface Selection {
  /** Chosen nodes, weighted ones included, with their role. */
  readonly chosen: Map<NodeProto, QdqOp>;
  /** Weighted nodes that could not be quantised, and why. */
  readonly skipped: { node: NodeProto; reason: string }[];
  /** Nodes the caller excluded by name. */
  readonly excluded: NodeProto[];
}

function isFloat(input: SelectionInput, name: string): boolean {
  return input.dtypes.get(name) === 'float32';
}

function opAllowed(input: SelectionInput, node: NodeProto): boolean {
  return input.opTypes === undefined || input.opTypes.has(node.opType);
}

/** Scalar bound of a Clip: an input (opset ≥ 11) or attribute (older). Undefined when not constant. */
async function clipBound(input: SelectionInput, clip: NodeProto, index: 1 | 2): Promise<number | undefined> {
  const fallback = index === 1 ? -Infinity : Infinity;
  const name = clip.input[index];
  if (name === undefined || name === '') {
    const a = getAttribute(clip, index === 1 ? 'min' : 'max');
    return a === undefined ? fallback : a.f;
  }
  const value = await readFloat32(input.model, input.constants.get(name));
  return value?.data.length === 1 ? value.data[0] : undefined;
}

/**
 * A Relu or Clip can vanish into the Q of the node before it when that node's output feeds nothing else and the
 * quantised range, which always contains 0, stays inside the clamp: Relu always; Clip when min ≤ 0 ≤ max.
 */
async function removable(
  input: SelectionInput,
  act: NodeProto,
  readers: ReadonlyMap<string, NodeProto[]>,
  outputs: ReadonlySet<string>,
): Promise<boolean> {
  if (input.symmetricActivations || input.exclude.has(act.name) || !opAllowed(input, act)) return false;
  const x = act.input[0] ?? '';
  if (outputs.has(x) || (readers.get(x) ?? []).length !== 1) return false;
  if (!input.ranges.has(act.output[0] ?? '') || !isFloat(input, act.output[0] ?? '')) return false;
  if (act.opType === 'Relu') return true;
  const [lo, hi] = await Promise.all([clipBound(input, act, 1), clipBound(input, act, 2)]);
  return lo !== undefined && hi !== undefined && lo <= 0 && hi >= 0;
}

/** The value a node's quantised output will be: a removable Relu/Clip reading it takes over its name. */
export function effectiveOutput(
  node: NodeProto,
  chosen: ReadonlyMap<NodeProto, QdqOp>,
  readers: ReadonlyMap<string, NodeProto[]>,
): string {
  const out = node.output[0] ?? '';
  const [only] = readers.get(out) ?? [];
  return only !== undefined && chosen.get(only)?.kind === 'removable' ? (only.output[0] ?? out) : out;
}

async function checkWeighted(
  input: SelectionInput,
  node: NodeProto,
  readers: ReadonlyMap<string, NodeProto[]>,
): Promise<string | undefined> {
  const x = node.input[0] ?? '';
  const w = node.input[1] ?? '';
  if (!isFloat(input, x) || input.constants.has(x)) return `input "${x}" is not a float32 activation`;
  if (!input.ranges.has(x)) return `no calibrated range for its input "${x}"`;
  const weight = await readFloat32(input.model, input.constants.get(w));
  if (weight === undefined) return `weight "${w}" is not a constant float32 initializer`;
  const rank = weight.dims.length;
  if (node.opType === 'Conv' && rank < 3) return `weight "${w}" has rank ${rank}, expected ≥ 3`;
  if (node.opType !== 'Conv' && rank !== 2) return `weight "${w}" has rank ${rank}; only 2-D weights are quantised`;
  const bias = node.input[2];
  if (bias !== undefined && bias !== '') {
    const b = await readFloat32(input.model, input.constants.get(bias));
    const channels =
      node.opType === 'Gemm' && Number(getAttribute(node, 'transB')?.i ?? 0n) === 0 ? weight.dims[1] : weight.dims[0];
    if (b === undefined || b.dims.length !== 1 || b.data.length !== channels) {
      return `bias "${bias}" is not a constant float32 vector of ${channels} (one per output channel)`;
    }
  }
  if (node.opType === 'Conv') {
    // QLinearConv has no float output: the output, or the Relu/Clip right behind it, needs a range.
    const out = node.output[0] ?? '';
    const [only, ...more] = readers.get(out) ?? [];
    const next = more.length === 0 && (only?.opType === 'Relu' || only?.opType === 'Clip') ? only.output[0] : undefined;
    if (!input.ranges.has(out) && (next === undefined || !input.ranges.has(next))) {
      return `no calibrated range for its output "${out}"`;
    }
  }
  if (node.opType === 'Gemm') {
    const f = (name: string): number => getAttribute(node, name)?.f ?? 1;
    if (Number(getAttribute(node, 'transA')?.i ?? 0n) !== 0) return 'transA = 1 (QGemm fusion needs A untransposed)';
    if (f('alpha') !== 1 || (bias !== undefined && bias !== '' && f('beta') !== 1)) {
      return `alpha = ${f('alpha')}, beta = ${f('beta')} (ORT's QGemm fusion requires both to be 1)`;
    }
  }
  return undefined;
}

/** Qlinear and shared ops: every activation input and the output are float32 with ranges (constants excepted). */
function checkActivation(input: SelectionInput, node: NodeProto, op: QdqOp, out: string): boolean {
  if (op.minOpset !== undefined && input.opset < op.minOpset) return false;
  if (node.output.filter((o) => o !== '').length !== 1 || !isFloat(input, out)) return false;
  for (const i of activationInputs(node, op)) {
    const name = node.input[i] ?? '';
    if (name === '' || !isFloat(input, name)) return false;
    if (!input.constants.has(name) && !input.ranges.has(name)) return false;
  }
  return op.kind === 'shared' || input.ranges.has(out);
}

/**
 * Values a Q may not follow. ORT quantises at load time a float-weight Conv/Gemm that sits between a DQ and a Q,
 * looking through a Relu/Clip (WeightBiasQuantization, onnxruntime ≥ 1.21, weight_bias_quantization.cc), fuses any
 * listed op so placed, and first moves Qs backwards across data movement (qdq_propagation.cc, `CanNodePropagate`).
 * So a node meant to stay float must not have its output quantised, nor anything those ops derive from it.
 */
const Q_TRANSPARENT: ReadonlySet<string> = new Set([
  'Relu',
  'Clip',
  'MaxPool',
  'Reshape',
  'Transpose',
  'Squeeze',
  'Unsqueeze',
  'Slice',
]);

function keepFloat(graph: GraphProto, nodes: readonly NodeProto[]): Set<string> {
  const names = new Set(nodes.flatMap((n) => n.output).filter((o) => o !== ''));
  for (const node of graph.node) {
    if (Q_TRANSPARENT.has(node.opType) && names.has(node.input[0] ?? '')) {
      for (const o of node.output) if (o !== '') names.add(o);
    }
  }
  return names;
}

/** The node a value comes from, looking through the ops above. */
function producerOf(produced: ReadonlyMap<string, NodeProto>, name: string): string {
  let node = produced.get(name);
  while (node !== undefined && Q_TRANSPARENT.has(node.opType)) node = produced.get(node.input[0] ?? '');
  return node === undefined ? name : node.name || node.opType;
}
const FLOAT_NEIGHBOUR = '(a Q on that value would let ONNX Runtime quantise it anyway)';

export async function selectNodes(input: SelectionInput): Promise<Selection> {
  const { graph } = input;
  const chosen = new Map<NodeProto, QdqOp>();
  const skipped: { node: NodeProto; reason: string }[] = [];
  const excluded: NodeProto[] = [];
  const readers = consumers(graph);
  const produced = producers(graph);
  const outputs = new Set(graph.output.map((o) => o.name));
  for (const node of graph.node) {
    const op = qdqOp(node);
    if (op === undefined || !opAllowed(input, node)) continue;
    if (input.exclude.has(node.name)) {
      excluded.push(node);
      continue;
    }
    if (op.kind !== 'weighted') continue;
    const reason = await checkWeighted(input, node, readers);
    if (reason !== undefined) skipped.push({ node, reason });
    else chosen.set(node, op);
  }
  const floatOnly = keepFloat(graph, [...excluded, ...skipped.map((s) => s.node)]);
  for (let cascade = true; cascade;) {
    cascade = false;
    for (const [node] of chosen) {
      const from = producerOf(produced, node.input[0] ?? '');
      if (!floatOnly.has(node.input[0] ?? '')) continue;
      chosen.delete(node);
      skipped.push({ node, reason: `its input comes from "${from}", which stays float ${FLOAT_NEIGHBOUR}` });
      for (const name of keepFloat(graph, [node])) floatOnly.add(name);
      cascade = true;
    }
  }
  const candidates = new Map<NodeProto, boolean>(); // removables: whether they qualify, decided once
  let changed = true;
  while (changed) {
    changed = false;
    for (const node of graph.node) {
      const op = qdqOp(node);
      if (op === undefined || op.kind === 'weighted' || chosen.has(node) || input.exclude.has(node.name)) continue;
      if (!opAllowed(input, node)) continue;
      if (activationInputs(node, op).some((i) => floatOnly.has(node.input[i] ?? ''))) continue;
      const from = produced.get(node.input[0] ?? '');
      if (op.kind === 'removable') {
        if (from === undefined || !chosen.has(from) || chosen.get(from)?.kind === 'removable') continue;
        let ok = candidates.get(node);
        if (ok === undefined) {
          ok = await removable(input, node, readers, outputs);
          candidates.set(node, ok);
        }
        if (ok) {
          chosen.set(node, op);
          changed = true;
        }
        continue;
      }
      const touches =
        activationInputs(node, op).some((i) => {
          const p = produced.get(node.input[i] ?? '');
          return p !== undefined && chosen.has(p);
        }) || (readers.get(node.output[0] ?? '') ?? []).some((r) => chosen.has(r));
      if (!touches) continue;
      if (checkActivation(input, node, op, effectiveOutput(node, chosen, readers))) {
        chosen.set(node, op);
        changed = true;
      }
    }
  }
  // A Conv whose range was only on the Relu behind it, when that Relu could not be folded, has none for its output.
  for (const [node, op] of chosen) {
    if (op.kind === 'weighted' && op.outputRequired === true) {
      const out = effectiveOutput(node, chosen, readers);
      if (!input.ranges.has(out)) {
        chosen.delete(node);
        skipped.push({ node, reason: `no calibrated range for its output "${out}"` });
      }
    }
  }
  return { chosen, skipped, excluded };
}
