import * as z from 'zod';
import { OutpostError } from '../../errors.js';
import type { TensorSpec } from '../../artifact/manifest.js';
import type { TensorValue } from '../../backends/types.js';
import { argmaxAlong, softmaxAlong, topKRows } from '../postprocess.js';
import { tensor, type TransformDef } from './types.js';

/**
 * The existing post-processing kernels (`../postprocess.ts`, which `outpost run` and the server's per-model
 * post-processing use) as pipeline steps: softmax and argmax along an axis, top-k along the last one.
 */
const axisParams = z.object({ axis: z.number().int().min(-8).max(7).default(-1) }).strict();
export const topkParams = z.object({ k: z.number().int().min(1).max(1000).default(5) }).strict();

function floats(value: TensorValue | undefined, op: string): { data: Float32Array; dims: readonly number[] } {
  if (value === undefined) throw new OutpostError('INPUT_MISSING', `${op}: no input`);
  return { data: value.data as Float32Array, dims: value.dims };
}

function resolveAxis(axis: number, rank: number, op: string): number {
  const a = axis < 0 ? rank + axis : axis;
  if (a < 0 || a >= rank) {
    throw new OutpostError('TRANSFORM_PARAM_INVALID', `${op}: axis ${axis} is outside a rank-${rank} tensor`, {
      details: { op, param: 'axis', axis, rank },
    });
  }
  return a;
}

export const softmaxTransform: TransformDef<z.infer<typeof axisParams>> = {
  op: 'softmax',
  summary: 'softmax along an axis (max subtracted first)',
  params: axisParams,
  inputs: [{ name: 'x', dtypes: ['float32'] }],
  outputs: (_p, inputs): TensorSpec[] => [{ name: 'y', dtype: 'float32', shape: inputs.x?.shape ?? [] }],
  prepare: (params) => (inputs) => {
    const { data, dims } = floats(inputs.x, 'softmax');
    return { y: tensor('float32', softmaxAlong(data, dims, resolveAxis(params.axis, dims.length, 'softmax')), dims) };
  },
};

export const argmaxTransform: TransformDef<z.infer<typeof axisParams>> = {
  op: 'argmax',
  summary: 'index of the largest value along an axis (first on ties), int64, the axis removed',
  params: axisParams,
  inputs: [{ name: 'x', dtypes: ['float32'] }],
  outputs: (params, inputs): TensorSpec[] => {
    const shape = inputs.x?.shape ?? [];
    const axis = params.axis < 0 ? shape.length + params.axis : params.axis;
    return [{ name: 'indices', dtype: 'int64', shape: shape.filter((_, i) => i !== axis) }];
  },
  prepare: (params) => (inputs) => {
    const { data, dims } = floats(inputs.x, 'argmax');
    const axis = resolveAxis(params.axis, dims.length, 'argmax');
    return {
      indices: tensor(
        'int64',
        argmaxAlong(data, dims, axis),
        dims.filter((_, i) => i !== axis),
      ),
    };
  },
};

export const topkTransform: TransformDef<z.infer<typeof topkParams>> = {
  op: 'topk',
  summary: 'the k largest values of each row of the last axis: indices (int64) and scores, largest first',
  params: topkParams,
  inputs: [{ name: 'x', dtypes: ['float32'] }],
  outputs: (params, inputs): TensorSpec[] => {
    const shape = [...(inputs.x?.shape ?? []).slice(0, -1), params.k];
    return [
      { name: 'indices', dtype: 'int64', shape },
      { name: 'scores', dtype: 'float32', shape },
    ];
  },
  prepare: (params) => (inputs) => {
    const { data, dims } = floats(inputs.x, 'topk');
    const { indices, scores, kept } = topKRows(data, dims, params.k);
    const shape = [...dims.slice(0, -1), kept];
    return { indices: tensor('int64', indices, shape), scores: tensor('float32', scores, shape) };
  },
};
