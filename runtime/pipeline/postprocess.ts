import type { PostprocessStep } from '../artifact/manifest.js';
import type { TensorValue } from '../backends/types.js';

export interface Classification {
  readonly index: number;
  readonly score: number;
  readonly label?: string;
}

export interface PostprocessResult {
  readonly output: string;
  readonly probabilities?: Float32Array;
  readonly argmax?: number;
  readonly top?: readonly Classification[];
}

function scores(tensor: TensorValue): Float32Array {
  const { data } = tensor;
  if (data instanceof Float32Array) return data;
  return Float32Array.from(data as ArrayLike<number>, Number);
}

/** [outer, n, inner] around `axis`: element (o, j, i) is at (o * n + j) * inner + i. */
function around(dims: readonly number[], axis: number): [number, number, number] {
  let outer = 1;
  let inner = 1;
  for (let a = 0; a < axis; a++) outer *= dims[a] ?? 1;
  for (let a = axis + 1; a < dims.length; a++) inner *= dims[a] ?? 1;
  return [outer, dims[axis] ?? 0, inner];
}

/** Numerically stable softmax along `axis` (max subtracted before exp). */
export function softmaxAlong(x: Float32Array, dims: readonly number[], axis: number): Float32Array {
  const [outer, n, inner] = around(dims, axis);
  const out = new Float32Array(x.length);
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      const base = o * n * inner + i;
      let max = -Infinity;
      for (let j = 0; j < n; j++) max = Math.max(max, x[base + j * inner] ?? -Infinity);
      let sum = 0;
      for (let j = 0; j < n; j++) sum += out[base + j * inner] = Math.exp((x[base + j * inner] ?? 0) - max);
      for (let j = 0; j < n; j++) out[base + j * inner] = (out[base + j * inner] ?? 0) / sum;
    }
  }
  return out;
}

/** Index of the largest value along `axis`; the first one on ties (numpy.argmax). */
export function argmaxAlong(x: Float32Array, dims: readonly number[], axis: number): BigInt64Array {
  const [outer, n, inner] = around(dims, axis);
  const out = new BigInt64Array(outer * inner);
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      const base = o * n * inner + i;
      let best = 0;
      for (let j = 1; j < n; j++) if ((x[base + j * inner] ?? 0) > (x[base + best * inner] ?? 0)) best = j;
      out[o * inner + i] = BigInt(best);
    }
  }
  return out;
}

/** The k largest values of each row of the last axis, largest first, earlier index first on ties; NaN ranks last. */
export function topKRows(
  x: Float32Array,
  dims: readonly number[],
  k: number,
): { indices: BigInt64Array; scores: Float32Array; kept: number } {
  const classes = dims[dims.length - 1] ?? 0;
  const rows = classes === 0 ? 0 : x.length / classes;
  const kept = Math.min(k, classes);
  const indices = new BigInt64Array(rows * kept);
  const scores = new Float32Array(rows * kept);
  const keys = new Float32Array(kept);
  const slot = new Int32Array(kept);
  for (let row = 0; row < rows; row++) {
    let filled = 0;
    for (let j = 0; j < classes; j++) {
      const value = x[row * classes + j] ?? 0;
      const key = Number.isNaN(value) ? -Infinity : value;
      if (filled === kept && !(key > (keys[kept - 1] ?? -Infinity))) continue;
      let p = filled < kept ? filled++ : kept - 1;
      for (; p > 0 && key > (keys[p - 1] ?? -Infinity); p--) {
        keys[p] = keys[p - 1] ?? 0;
        slot[p] = slot[p - 1] ?? 0;
      }
      keys[p] = key;
      slot[p] = j;
    }
    for (let r = 0; r < kept; r++) {
      const index = slot[r] ?? 0;
      indices[row * kept + r] = BigInt(index);
      scores[row * kept + r] = x[row * classes + index] ?? 0;
    }
  }
  return { indices, scores, kept };
}

/** Softmax of one row of scores ([classes] or [1, classes]). */
export function softmax(values: Float32Array): Float32Array {
  return softmaxAlong(values, [values.length], 0);
}

/** The k best classes of one row of scores, with their labels. */
export function topK(values: Float32Array, k: number, labels?: readonly string[]): Classification[] {
  const { indices, scores } = topKRows(values, [values.length], k);
  return Array.from(indices, (i, r) => {
    const index = Number(i);
    return { index, score: scores[r] ?? 0, label: labels?.[index] };
  });
}

/**
 * Runs the artifact's post-processing steps on the outputs of one request (batch of one): softmax, argmax, top-k
 * with labels. Steps without `output` apply to the model's first output.
 */
export function postprocess(
  steps: readonly PostprocessStep[],
  outputs: Readonly<Record<string, TensorValue>>,
  firstOutput: string,
  labels?: readonly string[],
): PostprocessResult | undefined {
  if (steps.length === 0) return undefined;
  const name = steps[0]?.output ?? firstOutput;
  const tensor = outputs[name];
  if (tensor === undefined) return undefined;
  let values = scores(tensor);
  let result: { output: string; probabilities?: Float32Array; argmax?: number; top?: Classification[] } = {
    output: name,
  };
  for (const step of steps) {
    switch (step.op) {
      case 'softmax':
        values = softmax(values);
        result = { ...result, probabilities: values };
        break;
      case 'argmax':
        result = { ...result, argmax: topK(values, 1)[0]?.index ?? -1 };
        break;
      case 'topk':
        result = { ...result, top: topK(values, step.k, labels) };
        break;
    }
  }
  return result;
}
