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

/** Numerically stable softmax over the last axis of a [1, classes] or [classes] tensor. */
export function softmax(values: Float32Array): Float32Array {
  let max = -Infinity;
  for (const v of values) if (v > max) max = v;
  const out = new Float32Array(values.length);
  let sum = 0;
  for (let i = 0; i < values.length; i++) sum += out[i] = Math.exp((values[i] ?? 0) - max);
  for (let i = 0; i < out.length; i++) out[i] = (out[i] ?? 0) / sum;
  return out;
}

export function topK(values: Float32Array, k: number, labels?: readonly string[]): Classification[] {
  const order = Array.from(values.keys()).sort((a, b) => (values[b] ?? 0) - (values[a] ?? 0));
  return order.slice(0, k).map((index) => ({ index, score: values[index] ?? 0, label: labels?.[index] }));
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
