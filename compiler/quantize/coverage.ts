import { loadModel, mainGraph, tensorDims, type OnnxModel, type TensorProto } from '../onnx/index.js';

/**
 * How much of a model an int8 build really quantised: the share of the weights of its weighted ops (Conv,
 * ConvTranspose, MatMul, Gemm with a constant weight) that the built file stores as 8-bit integers. A build whose
 * weights sit behind Casts (an fp16 export), or whose candidates were all skipped, quantises nothing and is the fp32
 * model again under another name: the compile drops it (variants.ts) rather than ship it as "int8".
 */
export const QUANTISED_OPS: ReadonlySet<string> = new Set(['Conv', 'ConvTranspose', 'MatMul', 'Gemm']);

/** Below this share of weights in int8 a build is not an int8 variant. */
export const MIN_QUANTISED_SHARE = 0.1;

export interface Coverage {
  /** Weighted nodes whose weight is a float constant. */
  readonly candidates: number;
  /** Weight elements of those nodes in the float model. */
  readonly floatWeights: number;
  /** 8-bit weight elements in the built model (initializers of more than one element). */
  readonly int8Weights: number;
  /** int8Weights / floatWeights, at most 1 (0 when there is nothing to quantise). */
  readonly share: number;
}

const FLOAT_TYPES: ReadonlySet<number> = new Set([1, 10, 11, 16]); // FLOAT, FLOAT16, DOUBLE, BFLOAT16
const INT8_TYPES: ReadonlySet<number> = new Set([2, 3]); // UINT8, INT8

function elements(t: TensorProto): number {
  return tensorDims(t).reduce((a, d) => a * d, 1);
}

export async function quantisedCoverage(base: OnnxModel, builtPath: string): Promise<Coverage> {
  const graph = mainGraph(base.proto);
  const initializers = new Map(graph.initializer.map((t) => [t.name, t]));
  let candidates = 0;
  let floatWeights = 0;
  for (const node of graph.node) {
    if (!QUANTISED_OPS.has(node.opType) || node.domain !== '') continue;
    const weight = initializers.get(node.input[1] ?? '');
    if (weight === undefined || !FLOAT_TYPES.has(weight.dataType)) continue;
    candidates++;
    floatWeights += elements(weight);
  }
  const built = mainGraph((await loadModel(builtPath)).proto);
  const int8Weights = built.initializer
    .filter((t) => INT8_TYPES.has(t.dataType) && elements(t) > 1)
    .reduce((n, t) => n + elements(t), 0);
  return {
    candidates,
    floatWeights,
    int8Weights,
    share: floatWeights === 0 ? 0 : Math.min(1, int8Weights / floatWeights),
  };
}
