import type { TensorSpec } from '../artifact/manifest.js';
import type { TensorValue } from '../backends/types.js';
import type { Model } from '../model/model.js';
import { kserveDatatype, tensorFromJson, tensorToJson } from '../tensor/json.js';
import type { TensorLike } from '../tensor/tensor.js';
import { HttpError } from './errors.js';

/**
 * The Open Inference Protocol (KServe v2) REST bodies, JSON tensors
 * (https://github.com/kserve/open-inference-protocol/blob/main/specification/protocol/inference_rest.md).
 */
export interface TensorMetadata {
  name: string;
  datatype: string;
  /** -1 for a variable-size dimension ("Shape ... -1 for variable-size", model metadata response). */
  shape: number[];
}

export function tensorMetadata(spec: TensorSpec): TensorMetadata {
  return {
    name: spec.name,
    datatype: kserveDatatype(spec.dtype),
    shape: spec.shape.map((d) => (typeof d === 'number' ? d : -1)),
  };
}

export function modelMetadata(model: Model, versions: readonly string[]) {
  return {
    name: model.name,
    versions,
    platform: 'onnxruntime',
    inputs: model.inputs.map(tensorMetadata),
    outputs: model.outputs.map(tensorMetadata),
  };
}

export interface InferRequest {
  readonly id?: string;
  readonly inputs: Record<string, TensorLike>;
  /** Outputs the client asked for; all when empty. */
  readonly outputs: readonly string[];
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Parses and checks an inference request body against the model's inputs; problems are 400s naming the field. */
export function parseInferRequest(body: unknown, model: Model): InferRequest {
  if (!isRecord(body)) throw new HttpError(400, 'request body must be a JSON object with "inputs"', 'INPUT_INVALID');
  const { id, inputs, outputs } = body;
  if (id !== undefined && typeof id !== 'string') throw new HttpError(400, '"id" must be a string', 'INPUT_INVALID');
  if (!Array.isArray(inputs)) throw new HttpError(400, '"inputs" must be an array of tensors', 'INPUT_INVALID');
  const feeds: Record<string, TensorLike> = {};
  inputs.forEach((input: unknown, i) => {
    if (!isRecord(input) || typeof input.name !== 'string')
      throw new HttpError(400, `inputs[${i}] needs a "name"`, 'INPUT_INVALID');
    if (input.shape === undefined || input.datatype === undefined) {
      throw new HttpError(400, `inputs[${i}] ("${input.name}") needs "shape" and "datatype"`, 'INPUT_INVALID');
    }
    const expected = model.inputs.find((s) => s.name === input.name)?.dtype;
    feeds[input.name] = tensorFromJson(input, `input "${input.name}"`, expected);
  });
  const requested: string[] = [];
  if (outputs !== undefined) {
    if (!Array.isArray(outputs)) throw new HttpError(400, '"outputs" must be an array', 'INPUT_INVALID');
    for (const [i, o] of outputs.entries()) {
      if (!isRecord(o) || typeof o.name !== 'string')
        throw new HttpError(400, `outputs[${i}] needs a "name"`, 'INPUT_INVALID');
      if (!model.outputs.some((s) => s.name === o.name)) {
        throw new HttpError(
          400,
          `unknown output "${o.name}"; outputs: ${model.outputs.map((s) => s.name).join(', ')}`,
          'INPUT_INVALID',
        );
      }
      requested.push(o.name);
    }
  }
  return { ...(id === undefined ? {} : { id }), inputs: feeds, outputs: requested };
}

export function inferResponse(model: Model, request: InferRequest, outputs: Readonly<Record<string, TensorValue>>) {
  const names = request.outputs.length > 0 ? request.outputs : model.outputs.map((o) => o.name);
  return {
    model_name: model.name,
    model_version: model.version,
    ...(request.id === undefined ? {} : { id: request.id }),
    outputs: names.flatMap((name) => {
      const t = outputs[name];
      return t === undefined ? [] : [{ name, ...tensorToJson(t) }];
    }),
  };
}
