import { create } from '@bufbuild/protobuf';
import { NodeProtoSchema, type GraphProto, type NodeProto } from 'onnx-buf';
import type { TensorRange } from '../calibration/calibrators.js';
import {
  NameGenerator,
  attr,
  consumers,
  getAttribute,
  makeAttribute,
  producers,
  replaceUses,
  sortTopologically,
  type OnnxModel,
} from '../onnx/index.js';
import { addInitializer, dropIfUnused, readFloat32, type ConstantSource } from './constants.js';
import {
  computeQuantParams,
  minMax,
  quantArray,
  quantizeArray,
  quantRange,
  type QuantParams,
  type QuantType,
} from './params.js';
import { activationInputs, channelAxis, type QdqOp } from './qdq-ops.js';
import { effectiveOutput } from './qdq-select.js';
import { adjustForBias, applyWeightParams, quantizeBias, weightParams } from './weights.js';

/**
 * Writes the QDQ form of the chosen nodes ([ORT quantization guide, "ONNX quantization representation format"]:
 * "DeQuantizeLinear(QuantizeLinear(tensor)) between the original operators"): one Q → DQ pair per quantised
 * activation, shared by all its readers (ORT's EnsureUniqueDQForNodeUnit duplicates DQs per reader itself);
 * weights and biases as integer initializers behind a DQ. ORT then fuses each DQ → op → Q group into its integer
 * kernel when the session is optimised.
 */
export interface EmitInput {
  readonly model: OnnxModel;
  readonly graph: GraphProto;
  readonly chosen: ReadonlyMap<NodeProto, QdqOp>;
  readonly ranges: ReadonlyMap<string, TensorRange>;
  readonly constants: ReadonlyMap<string, ConstantSource>;
  readonly activations: QuantType;
  readonly symmetricActivations: boolean;
  readonly weights: QuantType;
  readonly weightSymmetric: boolean;
  readonly reduceRange: boolean;
  readonly perChannel: boolean;
}

export interface EmitResult {
  /** Activation tensors given a Q/DQ pair. */
  readonly tensors: number;
  readonly warnings: string[];
}

interface Planned {
  params: QuantParams;
  scale: string;
  zeroPoint: string;
}

/**
 * A Q or DQ node. Unnamed (names are optional, [IR.md, "Nodes"]): dozens of them per model, and on a small model
 * their names alone would cost a few percent of the file.
 */
function node(opType: string, input: string[], output: string, axis?: number): NodeProto {
  return create(NodeProtoSchema, {
    opType,
    input,
    output: [output],
    attribute: axis === undefined ? [] : [makeAttribute('axis', axis)],
  });
}

export async function emitQdq(input: EmitInput): Promise<EmitResult> {
  const { graph, chosen, model } = input;
  const names = new NameGenerator(model.proto);
  const warnings: string[] = [];
  const readers = consumers(graph);
  const actRange = quantRange(input.activations, { symmetric: input.symmetricActivations });
  const planned = new Map<string, Planned>();

  const scalarParams = (base: string, params: QuantParams, type: QuantType): Planned => {
    const zp = quantArray(type, 1);
    zp[0] = params.zeroPoint;
    return {
      params,
      scale: addInitializer(graph, names.value(`${base}_scale`), Float32Array.of(params.scale), []),
      zeroPoint: addInitializer(graph, names.value(`${base}_zp`), zp, [], type),
    };
  };
  const need = (t: string): Planned => {
    let plan = planned.get(t);
    if (plan === undefined) {
      const r = input.ranges.get(t) ?? { min: 0, max: 0 };
      plan = scalarParams(t, computeQuantParams(r.min, r.max, actRange, input.symmetricActivations), input.activations);
      planned.set(t, plan);
    }
    return plan;
  };
  const consumed = (t: string): boolean => {
    // Readers after removal: a removable's readers are what reads its output.
    return (readers.get(t) ?? []).some((r) => chosen.has(r) && chosen.get(r)?.kind !== 'removable');
  };

  const weighted: NodeProto[] = [];
  const constInputs: { node: NodeProto; index: number }[] = [];
  for (const n of graph.node) {
    const op = chosen.get(n);
    if (op === undefined || op.kind === 'removable') continue;
    const out = effectiveOutput(n, chosen, readers);
    if (op.kind === 'weighted') {
      weighted.push(n);
      need(n.input[0] ?? '');
      if (op.outputRequired === true || out !== n.output[0] || consumed(out)) need(out);
    } else if (op.kind === 'shared') {
      planned.set(out, need(n.input[0] ?? ''));
    } else {
      for (const i of activationInputs(n, op)) {
        const name = n.input[i] ?? '';
        if (input.constants.has(name)) constInputs.push({ node: n, index: i });
        else need(name);
      }
      need(out);
    }
  }

  // Relu/Clip folded into the node before them: that node now produces their output directly.
  for (const [act, op] of chosen) {
    if (op.kind !== 'removable') continue;
    const x = act.input[0] ?? '';
    const from = producers(graph).get(x);
    if (from === undefined) continue;
    from.output[from.output.indexOf(x)] = act.output[0] ?? '';
    graph.node.splice(graph.node.indexOf(act), 1);
    graph.valueInfo = graph.valueInfo.filter((v) => v.name !== x);
  }

  // Weight name + axis → its DQ output and scales, for weights several nodes share.
  const dequantized = new Map<string, { output: string; scales: Float32Array }>();
  for (const n of weighted) {
    const w = n.input[1] ?? '';
    const axis = input.perChannel ? channelAxis(n) : undefined;
    const weight = await readFloat32(model, input.constants.get(w));
    if (weight === undefined) continue; // checked during selection
    const inputScale = (planned.get(n.input[0] ?? '') as Planned).params.scale;
    const options = { type: input.weights, symmetric: input.weightSymmetric, reduceRange: input.reduceRange, axis };
    let params = weightParams(weight.data, weight.dims, options);
    const b = n.input[2];
    const bias = b === undefined || b === '' ? undefined : await readFloat32(model, input.constants.get(b));
    const key = `${w}\u0000${axis ?? ''}`;
    let wOut = dequantized.get(key)?.output;
    if (wOut === undefined) {
      if (bias !== undefined) params = adjustForBias(params, bias.data, inputScale);
      const q = applyWeightParams(weight.data, weight.dims, params, input.weights);
      const qName = addInitializer(graph, names.value(`${w}_q`), q.data, weight.dims, input.weights);
      const scale = addInitializer(
        graph,
        names.value(`${w}_scale`),
        q.scales,
        axis === undefined ? [] : [q.scales.length],
      );
      const zp = addInitializer(
        graph,
        names.value(`${w}_zp`),
        q.zeroPoints,
        axis === undefined ? [] : [q.scales.length],
        input.weights,
      );
      wOut = names.value(`${w}_dq`);
      graph.node.push(node('DequantizeLinear', [qName, scale, zp], wOut, axis));
      dequantized.set(key, { output: wOut, scales: q.scales });
    } else {
      params = { ...params, scales: dequantized.get(key)?.scales ?? params.scales };
    }
    n.input[1] = wOut;
    if (bias !== undefined && b !== undefined) {
      const qb = quantizeBias(bias.data, inputScale, params.scales);
      if (qb.clipped > 0) warnings.push(`${n.name || n.opType}: ${qb.clipped} bias values clipped to int32`);
      const qName = addInitializer(graph, names.value(`${b}_q`), qb.data, [qb.data.length], 'int32');
      const perChannel = qb.scales.length > 1;
      const scale = addInitializer(graph, names.value(`${b}_scale`), qb.scales, perChannel ? [qb.scales.length] : []);
      const bOut = names.value(`${b}_dq`);
      // No zero point: DequantizeLinear's default is 0, the only one a bias may have ([QLinearConv] "bias … zero
      // point 0"), and a per-channel int32 zero vector would cost 4 bytes a channel.
      graph.node.push(node('DequantizeLinear', [qName, scale], bOut, perChannel ? 0 : undefined));
      n.input[2] = bOut;
      // ORT's QGemm selector reads `beta` without a default (qdq_selectors.cc, GemmNodeGroupSelector::Check).
      if (n.opType === 'Gemm' && getAttribute(n, 'beta') === undefined)
        n.attribute.push(makeAttribute('beta', attr.float(1)));
    }
  }

  // Constant operands of Add/Mul/Concat: the activation type, with the constant's own range.
  for (const { node: n, index } of constInputs) {
    const name = n.input[index] ?? '';
    const value = await readFloat32(model, input.constants.get(name));
    if (value === undefined) continue;
    const [lo, hi] = minMax(value.data);
    const params = computeQuantParams(lo, hi, actRange, input.symmetricActivations);
    const p = scalarParams(name, params, input.activations);
    const q = addInitializer(
      graph,
      names.value(`${name}_q`),
      quantizeArray(value.data, params, input.activations),
      value.dims,
      input.activations,
    );
    const out = names.value(`${name}_dq`);
    graph.node.push(node('DequantizeLinear', [q, p.scale, p.zeroPoint], out));
    n.input[index] = out;
  }

  const inputs = new Set(graph.input.map((i) => i.name));
  const outputs = new Set(graph.output.map((o) => o.name));
  for (const [t, plan] of planned) {
    const qName = names.value(`${t}_q`);
    if (outputs.has(t)) {
      // Keep the graph's interface: the producer's float value is renamed, the DQ produces the output's name.
      const from = producers(graph).get(t);
      if (from === undefined || inputs.has(t)) continue;
      const raw = names.value(`${t}_float`);
      from.output[from.output.indexOf(t)] = raw;
      graph.node.push(node('QuantizeLinear', [raw, plan.scale, plan.zeroPoint], qName));
      graph.node.push(node('DequantizeLinear', [qName, plan.scale, plan.zeroPoint], t));
      continue;
    }
    const q = node('QuantizeLinear', [t, plan.scale, plan.zeroPoint], qName);
    const dqName = names.value(`${t}_dq`);
    graph.node.push(q, node('DequantizeLinear', [qName, plan.scale, plan.zeroPoint], dqName));
    replaceUses(graph, t, dqName, { except: [q] });
  }

  const reads = consumers(graph);
  for (const source of input.constants.values())
    dropIfUnused(graph, source, reads.has(source.name) || outputs.has(source.name));
  sortTopologically(graph);
  return { tensors: planned.size, warnings };
}
