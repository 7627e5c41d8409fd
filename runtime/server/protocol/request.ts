import type { TensorSpec } from '../../artifact/manifest.js';
import type { Model } from '../../model/model.js';
import type { DType } from '../../tensor/dtype.js';
import { dtypeFromName, kserveDatatype } from '../../tensor/json.js';
import { HEADER_LENGTH_HEADER } from './binary.js';
import { HttpError } from '../http/status.js';

/**
 * The Open Inference Protocol (KServe v2) REST bodies
 * (https://github.com/kserve/open-inference-protocol/blob/main/specification/protocol/inference_rest.md), with the
 * binary tensor data extension's parameters (binary.ts): `binary_data_size` on inputs, `binary_data` on requested
 * outputs, `binary_data_output` on the request.
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

/** Model metadata; `extraOutputs` are the post-processing outputs the server adds (README.md). */
export function modelMetadata(model: Model, versions: readonly string[], extraOutputs: readonly TensorMetadata[] = []) {
  return {
    name: model.name,
    versions,
    platform: 'onnxruntime',
    inputs: model.inputs.map(tensorMetadata),
    outputs: [...model.outputs.map(tensorMetadata), ...extraOutputs],
  };
}

/** Nesting deeper than this in `data` or `shape` is refused before it is walked (no tensor has 32 dimensions). */
export const MAX_RANK = 32;

/** One input as the request declares it, before its data is decoded (inputs.ts). */
export interface RequestInput {
  readonly name: string;
  readonly dtype: DType;
  readonly dims: readonly number[];
  /** JSON `data`, flattened row-major; absent for binary inputs. */
  readonly data?: readonly unknown[];
  /** This input's slice of the binary section (a view of the request body). */
  readonly binary?: Buffer;
}

export interface RequestedOutput {
  readonly name: string;
  /** Returned as binary data (`binary_data`, else the request's `binary_data_output`), else as JSON. */
  readonly binary: boolean;
}

export interface InferRequest {
  readonly id?: string;
  readonly inputs: readonly RequestInput[];
  /** What the response carries, in order: the outputs asked for, or every output when none were named. */
  readonly outputs: readonly RequestedOutput[];
}

/** What a request is checked against: the model's inputs and every output name it can answer with. */
export interface RequestContext {
  readonly inputs: readonly TensorSpec[];
  readonly outputNames: readonly string[];
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function bad(message: string, code: 'INPUT_INVALID' | 'INPUT_NAME_UNKNOWN' = 'INPUT_INVALID'): HttpError {
  return new HttpError(400, message, code);
}

/**
 * A bad value, shortened, for a message. Arrays and objects are only summarised: printing one nested a million deep
 * would overflow the stack (a 500 where a 400 is due).
 */
function show(value: unknown): string {
  if (Array.isArray(value)) return `an array of ${value.length}`;
  if (typeof value === 'object' && value !== null) return 'an object';
  const text = JSON.stringify(value) as string | undefined;
  return text === undefined ? String(value) : text.length > 40 ? `${text.slice(0, 40)}…` : text;
}

/** Hands out consecutive slices of the binary section, in input order (extension: "in the same order"). */
class BinaryCursor {
  private offset = 0;

  constructor(private readonly bytes: Buffer) {}

  take(size: number, what: string): Buffer {
    const left = this.bytes.length - this.offset;
    if (size > left) {
      throw bad(`${what}: binary_data_size ${size} runs past the end of the body (${left} bytes of binary data left)`);
    }
    const slice = this.bytes.subarray(this.offset, this.offset + size);
    this.offset += size;
    return slice;
  }

  finish(): void {
    const left = this.bytes.length - this.offset;
    if (left > 0) {
      throw bad(
        `the inputs' binary_data_size values add up to ${this.offset} bytes, but ${this.offset + left} bytes follow the JSON header`,
      );
    }
  }
}

function parseShape(value: unknown, what: string): number[] {
  if (!Array.isArray(value) || value.length > MAX_RANK) {
    throw bad(`${what}: "shape" must be an array of at most ${MAX_RANK} non-negative integers, got ${show(value)}`);
  }
  for (const d of value) {
    if (!Number.isSafeInteger(d) || (d as number) < 0)
      throw bad(`${what}: "shape" must hold non-negative integers, got ${show(d)}`);
  }
  return value as number[];
}

/**
 * Row-major flattening without recursion, so a hostile nesting depth is a 400 and not a stack overflow. Elements
 * are numbers, strings, booleans (or null, refused later as not a value of the dtype); an object is refused here,
 * before anything tries to print it.
 */
function flattenData(data: unknown, what: string): readonly unknown[] {
  if (!Array.isArray(data)) return [data];
  let nested = false;
  for (let i = 0; i < data.length; i++) {
    const value: unknown = data[i];
    if (Array.isArray(value)) nested = true;
    else if (typeof value === 'object' && value !== null) throw bad(`${what}: "data" element ${i} is an object`);
  }
  if (!nested) return data;
  const out: unknown[] = [];
  const stack: { array: readonly unknown[]; index: number }[] = [{ array: data, index: 0 }];
  for (let top = stack[0]; top !== undefined; top = stack[stack.length - 1]) {
    if (top.index >= top.array.length) {
      stack.pop();
      continue;
    }
    const value = top.array[top.index++];
    if (typeof value === 'object' && value !== null && !Array.isArray(value))
      throw bad(`${what}: "data" element ${out.length} is an object`);
    if (!Array.isArray(value)) out.push(value);
    else if (stack.length >= MAX_RANK) throw bad(`${what}: "data" is nested deeper than ${MAX_RANK} levels`);
    else stack.push({ array: value, index: 0 });
  }
  return out;
}

function parseInput(value: unknown, i: number, context: RequestContext, binary: BinaryCursor | undefined) {
  if (!isRecord(value) || typeof value.name !== 'string' || value.name === '') throw bad(`inputs[${i}] needs a "name"`);
  const name = value.name;
  const what = `input "${name}"`;
  if (!context.inputs.some((s) => s.name === name)) {
    throw bad(
      `unknown input "${name}"; the model's inputs: ${context.inputs.map((s) => s.name).join(', ')}`,
      'INPUT_NAME_UNKNOWN',
    );
  }
  if (typeof value.datatype !== 'string') throw bad(`${what} needs a "datatype" such as "FP32"`);
  const dtype = dtypeFromName(value.datatype, what);
  const dims = parseShape(value.shape, what);
  const parameters = value.parameters ?? {};
  if (!isRecord(parameters)) throw bad(`${what}: "parameters" must be an object`);
  const size = parameters.binary_data_size;
  if (size === undefined) {
    if (value.data === undefined) throw bad(`${what} needs "data" or parameters.binary_data_size`);
    return { name, dtype, dims, data: flattenData(value.data, what) };
  }
  if (!Number.isSafeInteger(size) || (size as number) < 0)
    throw bad(`${what}: parameters.binary_data_size must be a non-negative integer, got ${show(size)}`);
  if (value.data !== undefined) throw bad(`${what} has both "data" and parameters.binary_data_size; send one`);
  if (binary === undefined)
    throw bad(`${what} has parameters.binary_data_size but the request has no ${HEADER_LENGTH_HEADER} header`);
  return { name, dtype, dims, binary: binary.take(size as number, what) };
}

/**
 * The `outputs` of a request: omitted or empty, every output the context lists (`defaults`, when given: an image
 * body's declared answer); else those named, in that order, each binary when it says so or `all` says so.
 */
export function parseOutputs(
  value: unknown,
  all: boolean,
  context: RequestContext,
  defaults: readonly string[] = context.outputNames,
): RequestedOutput[] {
  if (value === undefined || (Array.isArray(value) && value.length === 0))
    return defaults.map((name) => ({ name, binary: all }));
  if (!Array.isArray(value)) throw bad('"outputs" must be an array');
  const seen = new Set<string>();
  return value.map((o: unknown, i) => {
    if (!isRecord(o) || typeof o.name !== 'string') throw bad(`outputs[${i}] needs a "name"`);
    if (!context.outputNames.includes(o.name))
      throw bad(`unknown output "${o.name}"; outputs: ${context.outputNames.join(', ')}`);
    if (seen.has(o.name)) throw bad(`output "${o.name}" is asked for twice`);
    seen.add(o.name);
    const parameters = o.parameters ?? {};
    if (!isRecord(parameters)) throw bad(`outputs[${i}] ("${o.name}"): "parameters" must be an object`);
    const binary = parameters.binary_data;
    if (binary !== undefined && typeof binary !== 'boolean')
      throw bad(`outputs[${i}] ("${o.name}"): parameters.binary_data must be true or false`);
    return { name: o.name, binary: binary ?? all };
  });
}

/**
 * Checks an inference request's JSON object (and its binary section, when the body had one) against the model:
 * problems are 400s naming the field. Input data is located, not decoded: JSON `data` is flattened, binary data is
 * sliced in input order and must account for every byte after the JSON header.
 */
export function parseInferRequest(body: unknown, binary: Buffer | undefined, context: RequestContext): InferRequest {
  if (!isRecord(body)) throw bad('request body must be a JSON object with "inputs"');
  const { id, inputs, outputs, parameters = {} } = body;
  if (id !== undefined && typeof id !== 'string') throw bad('"id" must be a string');
  if (!Array.isArray(inputs)) throw bad('"inputs" must be an array of tensors');
  if (!isRecord(parameters)) throw bad('"parameters" must be an object');
  const all = parameters.binary_data_output;
  if (all !== undefined && typeof all !== 'boolean') throw bad('parameters.binary_data_output must be true or false');
  const cursor = binary === undefined ? undefined : new BinaryCursor(binary);
  const parsed: RequestInput[] = [];
  inputs.forEach((input: unknown, i) => {
    const next = parseInput(input, i, context, cursor);
    if (parsed.some((p) => p.name === next.name)) throw bad(`input "${next.name}" is given twice`);
    parsed.push(next);
  });
  cursor?.finish();
  return {
    ...(id === undefined ? {} : { id }),
    inputs: parsed,
    outputs: parseOutputs(outputs, all === true, context),
  };
}
