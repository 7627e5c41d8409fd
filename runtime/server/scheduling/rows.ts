import { OutpostError } from '../../errors.js';
import type { TensorSpec } from '../../artifact/manifest.js';
import type { TensorValue } from '../../backends/types.js';
import type { Feeds, Model, Outputs } from '../../model/model.js';
import { BATCH_SYMBOLS, formatShape } from '../../model/validate.js';
import type { TensorData } from '../../tensor/dtype.js';
import { elementCount, zeros, type TensorLike } from '../../tensor/tensor.js';

/**
 * Why `model` cannot be batched along axis 0, or undefined when it can: every input's first dimension must be the
 * same symbol, one that names a batch (a symbol such as a time axis would be concatenated across requests and change
 * the answers), used on no other axis; every output's first dimension must be symbolic too.
 */
export function batchProblem(model: Model, extraSymbols: readonly string[] = []): string | undefined {
  const first = model.inputs[0]?.shape[0];
  if (first === undefined) return 'it has no input with a first dimension';
  const namesBatch = (s: string) => BATCH_SYMBOLS.has(s) || /batch/i.test(s) || extraSymbols.includes(s);
  for (const input of model.inputs) {
    const [axis0, ...rest] = input.shape;
    const shape = formatShape(input.shape);
    if (typeof axis0 !== 'string') return `input "${input.name}" ${shape} has a fixed first dimension`;
    if (!namesBatch(axis0)) return `input "${input.name}" ${shape}: "${axis0}" is not a batch symbol`;
    if (axis0 !== first) return `inputs disagree on the batch symbol ("${String(first)}" and "${axis0}")`;
    if (rest.includes(axis0)) return `input "${input.name}" ${shape} uses "${axis0}" beyond its first axis`;
  }
  for (const output of model.outputs) {
    if (typeof output.shape[0] !== 'string')
      return `output "${output.name}" ${formatShape(output.shape)} has a fixed first dimension`;
  }
  return undefined;
}

/** One request's part of a batch: its feeds and how many rows (first-axis entries) they hold. */
export interface Rows {
  readonly feeds: Feeds;
  readonly rows: number;
}

type Typed = Exclude<TensorData, string[]>;

/** Elements in one row: the product of every axis after the first. */
function rowSize(dims: readonly number[]): number {
  let n = 1;
  for (let axis = 1; axis < dims.length; axis++) n *= dims[axis] as number;
  return n;
}

/** `data[start, end)` without copying for typed arrays; strings have no views, so they are copied. */
function view(data: TensorData, start: number, end: number): TensorData {
  if (Array.isArray(data)) return data.slice(start, end);
  return start === 0 && end === data.length ? data : data.subarray(start, end);
}

function copyInto(target: TensorData, source: TensorData, offset: number): void {
  if (Array.isArray(target)) {
    for (let i = 0; i < source.length; i++) target[offset + i] = source[i] as string;
    return;
  }
  // Both arrays hold the same input's dtype (the validator checked each feed), so `set` copies element for element;
  // the cast only picks one member of the union for the type checker.
  (target as Uint8Array).set(source as Uint8Array, offset);
}

/** Concatenated feeds for one batch, and the pooled buffers to hand back once the batch has run. */
export interface Concatenated {
  readonly feeds: Feeds;
  readonly leased: readonly (readonly [string, Typed])[];
}

/**
 * Builds batch inputs by copying each request's rows, in order, into one buffer per input (concatenation along axis
 * 0). Buffers are pooled per input and reused by later batches whose size fits, so a steady load allocates no
 * input memory; at most `keep` buffers per input are pooled (one per batch that can be in flight).
 */
export class RowBuffers {
  private readonly free = new Map<string, Typed[]>();

  constructor(
    private readonly inputs: readonly TensorSpec[],
    /** Rows a fresh buffer is sized for, so one allocation serves every batch up to that size. */
    private readonly capacityRows: number,
    private readonly keep: number,
  ) {}

  concat(requests: readonly Rows[], rows: number): Concatenated {
    const feeds: Record<string, TensorLike> = {};
    const leased: [string, Typed][] = [];
    for (const spec of this.inputs) {
      const first = (requests[0] as Rows).feeds[spec.name] as TensorLike;
      const size = rowSize(first.dims);
      const count = rows * size;
      let data: TensorData;
      if (spec.dtype === 'string') data = zeros('string', count);
      else {
        const buffer = this.take(spec, count, size);
        leased.push([spec.name, buffer]);
        data = view(buffer, 0, count);
      }
      let offset = 0;
      for (const request of requests) {
        const feed = request.feeds[spec.name] as TensorLike;
        copyInto(data, feed.data, offset);
        offset += feed.data.length;
      }
      const dims = first.dims.slice();
      dims[0] = rows;
      feeds[spec.name] = { data, dims, type: spec.dtype };
    }
    return { feeds, leased };
  }

  /** Returns a batch's buffers to the pool; call only after the run that read them has finished. */
  release(concatenated: Concatenated): void {
    for (const [name, buffer] of concatenated.leased) {
      let list = this.free.get(name);
      if (list === undefined) this.free.set(name, (list = []));
      if (list.length < this.keep) list.push(buffer);
    }
  }

  private take(spec: TensorSpec, count: number, size: number): Typed {
    const pooled = this.free.get(spec.name)?.pop();
    if (pooled !== undefined && pooled.length >= count) return pooled;
    // Too small (a request shape with longer rows) or none pooled: the old one is dropped for the collector.
    return zeros(spec.dtype, Math.max(count, this.capacityRows * size)) as Typed;
  }
}

/**
 * Splits batch outputs back into one result per request along axis 0. Typed data are views (subarray) of the batch's
 * output, not copies: every request of a batch shares the output buffers ONNX Runtime allocated for it. Throws
 * before resolving anything when an output's first axis does not hold one entry per row (a model that does not
 * keep rows independent, which the batch-axis rule could not see).
 */
export function splitRows(outputs: Outputs, requests: readonly Rows[], rows: number): Outputs[] {
  const names = Object.keys(outputs);
  for (const name of names) {
    const dims = (outputs[name] as TensorValue).dims;
    if (dims[0] !== rows || elementCount(dims) !== (outputs[name] as TensorValue).data.length) {
      throw new OutpostError(
        'INFERENCE_FAILED',
        `output "${name}" of a ${rows}-row batch has shape [${dims.join(', ')}], not ${rows} rows along axis 0: the model does not batch along its first axis; serve it with the direct scheduler`,
        { details: { output: name, rows, dims: [...dims] } },
      );
    }
  }
  const results: Outputs[] = [];
  let row = 0;
  for (const request of requests) {
    const result: Outputs = {};
    for (const name of names) {
      const output = outputs[name] as TensorValue;
      const size = rowSize(output.dims);
      const dims = output.dims.slice();
      dims[0] = request.rows;
      result[name] = { type: output.type, dims, data: view(output.data, row * size, (row + request.rows) * size) };
    }
    results.push(result);
    row += request.rows;
  }
  return results;
}
