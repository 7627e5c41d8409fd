import type { GraphProto, NodeProto } from 'onnx-buf';
import { NameGenerator, consumers, getAttribute, producers, type OnnxModel } from '../onnx/index.js';
import { addInitializer, constantSources, dropIfUnused, readFloat32, type ConstantSource } from './constants.js';
import { qdqOp } from './qdq-ops.js';

/**
 * Float rewrites that let more of a graph quantise, done before choosing what to quantise (ORT's guide recommends
 * the same pre-processing: "a Convolution operator followed by BatchNormalization can be fused into one … which can
 * be quantized very efficiently"). Value names that survive keep their meaning, so ranges calibrated on the original
 * graph still apply: the folded Conv produces the BatchNormalization's output, a Div-turned-Mul keeps its output.
 */
export interface PrepareResult {
  readonly foldedBatchNorms: number;
  readonly divisionsToProducts: number;
}

function isDefault(node: NodeProto): boolean {
  return node.domain === '' || node.domain === 'ai.onnx';
}

function readsOf(graph: GraphProto): Map<string, NodeProto[]> {
  return consumers(graph);
}

/**
 * Conv → BatchNormalization with constant parameters becomes one Conv ([ONNX Operators.md, BatchNormalization]
 * y = scale · (x − mean) / √(var + ε) + B): W'ₘ = Wₘ · sₘ and b'ₘ = (bₘ − meanₘ) · sₘ + Bₘ with sₘ = scaleₘ / √(varₘ + ε).
 */
async function foldBatchNorm(
  model: OnnxModel,
  graph: GraphProto,
  conv: NodeProto,
  bn: NodeProto,
  consts: Map<string, ConstantSource>,
  names: NameGenerator,
): Promise<boolean> {
  const [w, scale, bias, mean, variance] = await Promise.all(
    [conv.input[1], bn.input[1], bn.input[2], bn.input[3], bn.input[4]].map((n) =>
      readFloat32(model, consts.get(n ?? '')),
    ),
  );
  const convBias = conv.input[2] === undefined || conv.input[2] === '' ? undefined : conv.input[2];
  const b = convBias === undefined ? undefined : await readFloat32(model, consts.get(convBias));
  if (w === undefined || scale === undefined || bias === undefined || mean === undefined || variance === undefined) {
    return false;
  }
  if (convBias !== undefined && b === undefined) return false;
  const channels = w.dims[0] ?? 0;
  if ([scale, bias, mean, variance].some((p) => p.data.length !== channels)) return false;
  const epsilon = getAttribute(bn, 'epsilon')?.f ?? 1e-5;
  const perChannel = w.data.length / channels;
  const folded = new Float32Array(w.data.length);
  const foldedBias = new Float32Array(channels);
  for (let m = 0; m < channels; m++) {
    const s = (scale.data[m] as number) / Math.sqrt((variance.data[m] as number) + epsilon);
    for (let i = m * perChannel; i < (m + 1) * perChannel; i++) folded[i] = (w.data[i] as number) * s;
    foldedBias[m] = ((b?.data[m] ?? 0) - (mean.data[m] as number)) * s + (bias.data[m] as number);
  }
  const out = bn.output[0] ?? '';
  const wName = addInitializer(graph, names.value(`${conv.name || 'conv'}_folded_weight`), folded, w.dims);
  const bName = addInitializer(graph, names.value(`${conv.name || 'conv'}_folded_bias`), foldedBias, [channels]);
  const old = [conv.input[1] ?? '', convBias ?? '', ...bn.input.slice(1)];
  const y = conv.output[0] ?? '';
  conv.input = [conv.input[0] ?? '', wName, bName];
  conv.output[0] = out;
  graph.node.splice(graph.node.indexOf(bn), 1);
  graph.valueInfo = graph.valueInfo.filter((v) => v.name !== y);
  const reads = readsOf(graph);
  for (const name of new Set(old)) {
    const source = consts.get(name);
    if (source !== undefined) dropIfUnused(graph, source, reads.has(name));
  }
  return true;
}

/**
 * Div by a constant scalar becomes Mul by its reciprocal when the Div sits among quantisable nodes (MobileNetV3's
 * hard-swish x · clip(x + 3, 0, 6) / 6): ORT has QLinearMul but no quantised Div. The product differs from the
 * quotient by at most an ulp, far below the 8-bit step that follows.
 */
async function divisionToProduct(
  model: OnnxModel,
  graph: GraphProto,
  div: NodeProto,
  consts: Map<string, ConstantSource>,
  names: NameGenerator,
): Promise<boolean> {
  const c = await readFloat32(model, consts.get(div.input[1] ?? ''));
  if (c === undefined || c.data.length !== 1 || c.data[0] === 0) return false;
  const name = addInitializer(
    graph,
    names.value(`${div.input[1] ?? 'divisor'}_reciprocal`),
    Float32Array.of(1 / (c.data[0] as number)),
    c.dims,
  );
  const old = div.input[1] ?? '';
  div.opType = 'Mul';
  div.input[1] = name;
  const source = consts.get(old);
  if (source !== undefined) dropIfUnused(graph, source, readsOf(graph).has(old));
  return true;
}

export async function prepareForQuantization(model: OnnxModel, graph: GraphProto): Promise<PrepareResult> {
  const names = new NameGenerator(model.proto);
  const outputs = new Set(graph.output.map((o) => o.name));
  let foldedBatchNorms = 0;
  let divisionsToProducts = 0;
  const reads = readsOf(graph);
  for (const bn of [...graph.node]) {
    if (!isDefault(bn) || bn.opType !== 'BatchNormalization' || bn.output.filter((o) => o !== '').length !== 1)
      continue;
    const conv = producers(graph).get(bn.input[0] ?? '');
    const y = bn.input[0] ?? '';
    if (conv === undefined || !isDefault(conv) || conv.opType !== 'Conv' || outputs.has(y)) continue;
    if ((reads.get(y) ?? []).length !== 1) continue;
    if (await foldBatchNorm(model, graph, conv, bn, constantSources(graph), names)) foldedBatchNorms += 1;
  }
  const produced = producers(graph);
  const readers = readsOf(graph);
  for (const div of [...graph.node]) {
    if (!isDefault(div) || div.opType !== 'Div') continue;
    const from = produced.get(div.input[0] ?? '');
    const near =
      (from !== undefined && qdqOp(from) !== undefined) ||
      (readers.get(div.output[0] ?? '') ?? []).some((n) => qdqOp(n) !== undefined);
    if (near && (await divisionToProduct(model, graph, div, constantSources(graph), names))) divisionsToProducts += 1;
  }
  return { foldedBatchNorms, divisionsToProducts };
}
