import type { PostprocessStep, TensorSpec } from '../../artifact/manifest.js';
import type { TensorValue } from '../../backends/types.js';
import type { Outputs } from '../../model/model.js';
import type { TensorData } from '../../tensor/dtype.js';
import { argmaxAlong, softmaxAlong, topKRows } from '../../pipeline/postprocess.js';
import type { TensorMetadata } from '../protocol/request.js';

/**
 * The artifact's post-processing (`pipeline.postprocess`: softmax, argmax, top-k with labels) as extra response
 * outputs named `<output><suffix>`, next to the raw outputs (README.md, "Post-processing outputs"). Steps run in
 * the manifest's order; a softmax replaces the scores later steps on the same output see, as `outpost run` does.
 * Every row of a batch is processed, with the kernels `outpost run` uses (runtime/pipeline/postprocess.ts).
 */
export const POSTPROCESS_SUFFIXES = Object.freeze({
  probabilities: '.probabilities',
  argmax: '.argmax',
  topKIndices: '.top_k_indices',
  topKScores: '.top_k_scores',
  topKLabels: '.top_k_labels',
});

/** A step resolved against the model's outputs once, at load: the output it reads and a valid axis. */
type Step =
  | { readonly op: 'softmax' | 'argmax'; readonly output: string; readonly axis: number }
  | { readonly op: 'topk'; readonly output: string; readonly k: number };

export interface PostprocessPlan {
  readonly steps: readonly Step[];
  /** The extra outputs, as model metadata lists them. */
  readonly outputs: readonly TensorMetadata[];
  readonly labels: readonly string[] | undefined;
}

const NUMERIC_SCORES = new Set(['float32', 'float64', 'int8', 'uint8', 'int16', 'uint16', 'int32', 'uint32', 'int64']);

/** Resolves the manifest's steps; a step naming a missing or non-numeric output, or a bad axis, is skipped via `skip`. */
export function planPostprocess(
  steps: readonly PostprocessStep[],
  specs: readonly TensorSpec[],
  labels: readonly string[] | undefined,
  skip: (step: PostprocessStep, why: string) => void,
): PostprocessPlan {
  const planned: Step[] = [];
  const outputs = new Map<string, TensorMetadata>();
  const add = (name: string, datatype: string, shape: number[]) => outputs.set(name, { name, datatype, shape });
  for (const step of steps) {
    const name = step.output ?? specs[0]?.name ?? '';
    const spec = specs.find((s) => s.name === name);
    if (spec === undefined || !NUMERIC_SCORES.has(spec.dtype)) {
      skip(step, `output "${name}" is not a numeric output of the model`);
      continue;
    }
    const dims = spec.shape.map((d) => (typeof d === 'number' ? d : -1));
    if (step.op === 'topk') {
      const classes = dims[dims.length - 1];
      if (classes === undefined) {
        skip(step, `output "${name}" is a scalar`);
        continue;
      }
      const shape = [...dims.slice(0, -1), classes >= 0 ? Math.min(step.k, classes) : -1];
      planned.push({ op: 'topk', output: name, k: step.k });
      add(name + POSTPROCESS_SUFFIXES.topKIndices, 'INT64', shape);
      add(name + POSTPROCESS_SUFFIXES.topKScores, 'FP32', shape);
      if (labels !== undefined) add(name + POSTPROCESS_SUFFIXES.topKLabels, 'BYTES', shape);
      continue;
    }
    const axis = step.axis < 0 ? dims.length + step.axis : step.axis;
    if (axis < 0 || axis >= dims.length) {
      skip(step, `axis ${step.axis} is outside output "${name}" of rank ${dims.length}`);
      continue;
    }
    planned.push({ op: step.op, output: name, axis });
    if (step.op === 'softmax') add(name + POSTPROCESS_SUFFIXES.probabilities, 'FP32', dims);
    else add(name + POSTPROCESS_SUFFIXES.argmax, 'INT64', dims.toSpliced(axis, 1));
  }
  return { steps: planned, outputs: [...outputs.values()], labels };
}

function scoresOf(tensor: TensorValue): Float32Array | undefined {
  if (!NUMERIC_SCORES.has(tensor.type)) return undefined;
  const data: TensorData = tensor.data;
  if (data instanceof Float32Array) return data;
  if (Array.isArray(data)) return undefined;
  return Float32Array.from(data as ArrayLike<number | bigint>, Number);
}

/** Top-k of each row of the last axis as response outputs (indices, scores, labels when the artifact has them). */
function topK(x: Float32Array, dims: readonly number[], k: number, labels: readonly string[] | undefined): Outputs {
  const { indices, scores, kept } = topKRows(x, dims, k);
  const shape = [...dims.slice(0, -1), kept];
  const out: Outputs = {
    [POSTPROCESS_SUFFIXES.topKIndices]: { type: 'int64', dims: shape, data: indices },
    [POSTPROCESS_SUFFIXES.topKScores]: { type: 'float32', dims: shape, data: scores },
  };
  if (labels !== undefined) {
    const names = Array.from(indices, (i) => labels[Number(i)] ?? '');
    out[POSTPROCESS_SUFFIXES.topKLabels] = { type: 'string', dims: shape, data: names };
  }
  return out;
}

/** Runs the plan on one call's outputs; returns only the extra outputs. */
export function runPostprocess(plan: PostprocessPlan, outputs: Readonly<Outputs>): Outputs {
  const extra: Outputs = {};
  const current = new Map<string, Float32Array>();
  for (const step of plan.steps) {
    const tensor = outputs[step.output];
    if (tensor === undefined) continue;
    const x = current.get(step.output) ?? scoresOf(tensor);
    const { dims } = tensor;
    // An empty batch gets empty outputs of the right shape, not missing ones.
    if (x === undefined) continue;
    if (step.op === 'topk') {
      for (const [suffix, value] of Object.entries(topK(x, dims, step.k, plan.labels)))
        extra[step.output + suffix] = value;
    } else if (step.axis < dims.length) {
      if (step.op === 'softmax') {
        const p = softmaxAlong(x, dims, step.axis);
        current.set(step.output, p);
        extra[step.output + POSTPROCESS_SUFFIXES.probabilities] = { type: 'float32', dims, data: p };
      } else {
        const data = argmaxAlong(x, dims, step.axis);
        extra[step.output + POSTPROCESS_SUFFIXES.argmax] = { type: 'int64', dims: dims.toSpliced(step.axis, 1), data };
      }
    }
  }
  return extra;
}
