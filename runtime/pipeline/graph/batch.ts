import { OutpostError } from '../../errors.js';
import type { TensorSpec } from '../../artifact/manifest.js';
import type { TensorValue } from '../../backends/types.js';
import type { Model } from '../../model/model.js';
import { allocateData } from '../../tensor/dtype.js';

/**
 * A model step that runs once per item of a list (one crop, one detected object), batched: the items (the first
 * axis of every input) go through the model `batch` at a time, as views of the inputs (no copy), and the outputs
 * are concatenated back along the first axis. This is the cross-step batching of docs/pipelines.md: all crops of
 * one image through the recogniser in ⌈N / batch⌉ runs rather than N. An empty list runs nothing and yields empty
 * outputs ([0, …], the model's fixed dims kept, symbolic ones 0).
 */
export async function runBatched(
  model: Model,
  feeds: Readonly<Record<string, TensorValue>>,
  batch: number,
  step: string,
): Promise<Record<string, TensorValue>> {
  const entries = Object.entries(feeds);
  const items = entries[0]?.[1].dims[0] ?? 0;
  for (const [name, value] of entries) {
    if (value.dims[0] !== items) {
      throw new OutpostError(
        'INPUT_SHAPE_MISMATCH',
        `step "${step}": input "${name}" has ${value.dims[0] ?? 0} items, "${entries[0]?.[0] ?? ''}" has ${items}; a per-item step needs the same count on every input`,
        { details: { step, tensor: name } },
      );
    }
  }
  if (items === 0) return Object.fromEntries(model.outputs.map((o) => [o.name, empty(o)]));
  if (items <= batch) return model.infer(feeds);
  const parts: Record<string, TensorValue>[] = [];
  for (let start = 0; start < items; start += batch) {
    const end = Math.min(items, start + batch);
    const chunk: Record<string, TensorValue> = {};
    for (const [name, value] of entries) chunk[name] = slice(value, start, end);
    parts.push(await model.infer(chunk));
  }
  return Object.fromEntries(
    model.outputs.map((o) => [
      o.name,
      concat(
        parts.map((p) => p[o.name] as TensorValue),
        step,
        o.name,
      ),
    ]),
  );
}

function perItem(dims: readonly number[]): number {
  let n = 1;
  for (let a = 1; a < dims.length; a++) n *= dims[a] ?? 1;
  return n;
}

function slice(value: TensorValue, start: number, end: number): TensorValue {
  const per = perItem(value.dims);
  const data = value.data;
  const part = Array.isArray(data) ? data.slice(start * per, end * per) : data.subarray(start * per, end * per);
  return { type: value.type, data: part, dims: [end - start, ...value.dims.slice(1)] };
}

function empty(spec: TensorSpec): TensorValue {
  const dims = [0, ...spec.shape.slice(1).map((d) => (typeof d === 'number' ? d : 0))];
  return { type: spec.dtype, data: allocateData(spec.dtype, 0), dims };
}

function concat(parts: readonly TensorValue[], step: string, name: string): TensorValue {
  const [first] = parts;
  if (first === undefined) throw new OutpostError('INTERNAL', `step "${step}": no parts for "${name}"`);
  const rest = first.dims.slice(1);
  let items = 0;
  for (const part of parts) {
    if (part.dims.slice(1).join(',') !== rest.join(',')) {
      throw new OutpostError(
        'INFERENCE_FAILED',
        `step "${step}": output "${name}" changed shape between batches ([${first.dims.join(', ')}] vs [${part.dims.join(', ')}])`,
      );
    }
    items += part.dims[0] ?? 0;
  }
  const per = perItem(first.dims);
  const out = allocateData(first.type, items * per);
  let offset = 0;
  for (const part of parts) {
    if (Array.isArray(out)) out.splice(offset, part.data.length, ...(part.data as string[]));
    else (out as Float32Array).set(part.data as Float32Array, offset);
    offset += part.data.length;
  }
  return { type: first.type, data: out, dims: [items, ...rest] };
}
