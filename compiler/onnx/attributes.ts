import { clone, create, isMessage } from '@bufbuild/protobuf';
import {
  AttributeProtoSchema,
  AttributeProto_AttributeType as AttrType,
  GraphProtoSchema,
  TensorProtoSchema,
  type AttributeProto,
  type GraphProto,
  type NodeProto,
  type TensorProto,
} from 'onnx-buf';
import { OutpostError } from '../../runtime/errors.js';
import { tensorToArray, type TensorValue } from './tensor.js';

/**
 * Node attributes (onnx IR.md, "Attributes"): exactly one value field, and a `type` that names it. ONNX Runtime
 * checks attribute types against the operator schema, so a float attribute given as INT is rejected: plain JS
 * values map by shape (integral number or bigint → INT, other number → FLOAT, string → STRING, arrays likewise),
 * and `attr.float(1)`, `attr.floats([1, 2])` … say so explicitly when a whole number must be a FLOAT.
 */
export type TypedAttribute =
  | { readonly kind: 'float'; readonly value: number }
  | { readonly kind: 'floats'; readonly value: readonly number[] }
  | { readonly kind: 'int'; readonly value: number | bigint }
  | { readonly kind: 'ints'; readonly value: readonly (number | bigint)[] }
  | { readonly kind: 'string'; readonly value: string | Uint8Array }
  | { readonly kind: 'strings'; readonly value: readonly string[] };

export type AttributeValue =
  | number
  | bigint
  | string
  | readonly number[]
  | readonly bigint[]
  | readonly string[]
  | TensorProto
  | GraphProto
  | readonly TensorProto[]
  | readonly GraphProto[]
  | TypedAttribute
  | AttributeProto;

/** Explicitly typed attribute values. */
export const attr = Object.freeze({
  float: (value: number): TypedAttribute => ({ kind: 'float', value }),
  floats: (value: readonly number[]): TypedAttribute => ({ kind: 'floats', value }),
  int: (value: number | bigint): TypedAttribute => ({ kind: 'int', value }),
  ints: (value: readonly (number | bigint)[]): TypedAttribute => ({ kind: 'ints', value }),
  string: (value: string | Uint8Array): TypedAttribute => ({ kind: 'string', value }),
  strings: (value: readonly string[]): TypedAttribute => ({ kind: 'strings', value }),
});

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function toInt(name: string, value: number | bigint): bigint {
  if (typeof value === 'bigint') return value;
  if (!Number.isSafeInteger(value)) {
    throw new OutpostError(
      'INVALID_ARGUMENT',
      `attribute ${name}: ${value} is not an integer; use attr.float() for floats`,
    );
  }
  return BigInt(value);
}

function utf8(value: string | Uint8Array): Uint8Array<ArrayBuffer> {
  return typeof value === 'string' ? encoder.encode(value) : new Uint8Array(value);
}

function fromTyped(name: string, v: TypedAttribute): AttributeProto {
  switch (v.kind) {
    case 'float':
      return create(AttributeProtoSchema, { name, type: AttrType.FLOAT, f: v.value });
    case 'floats':
      return create(AttributeProtoSchema, { name, type: AttrType.FLOATS, floats: [...v.value] });
    case 'int':
      return create(AttributeProtoSchema, { name, type: AttrType.INT, i: toInt(name, v.value) });
    case 'ints':
      return create(AttributeProtoSchema, { name, type: AttrType.INTS, ints: v.value.map((x) => toInt(name, x)) });
    case 'string':
      return create(AttributeProtoSchema, { name, type: AttrType.STRING, s: utf8(v.value) });
    case 'strings':
      return create(AttributeProtoSchema, { name, type: AttrType.STRINGS, strings: v.value.map(utf8) });
  }
}

function isTyped(value: AttributeValue): value is TypedAttribute {
  return typeof value === 'object' && !Array.isArray(value) && 'kind' in value && !('$typeName' in value);
}

/** An AttributeProto named `name` holding `value` (see the mapping above). */
export function makeAttribute(name: string, value: AttributeValue): AttributeProto {
  if (typeof value === 'bigint') return fromTyped(name, attr.int(value));
  if (typeof value === 'number') return fromTyped(name, Number.isInteger(value) ? attr.int(value) : attr.float(value));
  if (typeof value === 'string') return fromTyped(name, attr.string(value));
  if (Array.isArray(value)) {
    const list = value as readonly unknown[];
    if (list.length === 0) {
      throw new OutpostError(
        'INVALID_ARGUMENT',
        `attribute ${name}: an empty list has no type; use attr.ints([]) or attr.floats([])`,
      );
    }
    if (list.every((x) => typeof x === 'string')) return fromTyped(name, attr.strings(list));
    if (list.every((x) => typeof x === 'bigint')) return fromTyped(name, attr.ints(list));
    if (list.every((x) => typeof x === 'number')) {
      return fromTyped(name, list.every(Number.isInteger) ? attr.ints(list) : attr.floats(list));
    }
    if (list.every((x) => isMessage(x, TensorProtoSchema))) {
      return create(AttributeProtoSchema, { name, type: AttrType.TENSORS, tensors: [...list] });
    }
    if (list.every((x) => isMessage(x, GraphProtoSchema))) {
      return create(AttributeProtoSchema, { name, type: AttrType.GRAPHS, graphs: [...list] });
    }
    throw new OutpostError(
      'INVALID_ARGUMENT',
      `attribute ${name}: a list must hold only numbers, bigints, strings, tensors or graphs`,
    );
  }
  if (isTyped(value)) return fromTyped(name, value);
  if (isMessage(value, TensorProtoSchema))
    return create(AttributeProtoSchema, { name, type: AttrType.TENSOR, t: value });
  if (isMessage(value, GraphProtoSchema)) return create(AttributeProtoSchema, { name, type: AttrType.GRAPH, g: value });
  if (isMessage(value, AttributeProtoSchema)) {
    if (value.name === name) return value;
    const renamed = clone(AttributeProtoSchema, value);
    renamed.name = name;
    return renamed;
  }
  throw new OutpostError('INVALID_ARGUMENT', `attribute ${name}: unsupported value`);
}

export function getAttribute(node: NodeProto, name: string): AttributeProto | undefined {
  return node.attribute.find((a) => a.name === name);
}

/**
 * The value a Constant node produces (onnx Operators.md, Constant: exactly one of value, value_float(s),
 * value_int(s), value_string(s), sparse_value). Sparse values are MODEL_UNSUPPORTED here.
 */
export function constantValue(node: NodeProto): TensorValue {
  if (node.opType !== 'Constant' || (node.domain !== '' && node.domain !== 'ai.onnx')) {
    throw new OutpostError('INVALID_ARGUMENT', `node ${node.name || node.opType} is not an ONNX Constant`);
  }
  const a = node.attribute[0];
  if (a === undefined || node.attribute.length !== 1) {
    throw new OutpostError(
      'MODEL_INVALID',
      `Constant ${node.name} must have exactly one attribute, has ${node.attribute.length}`,
    );
  }
  switch (a.name) {
    case 'value':
      if (a.t === undefined) break;
      return tensorToArray(a.t);
    case 'value_float':
      return { dtype: 'float32', dims: [], data: Float32Array.of(a.f) };
    case 'value_floats':
      return { dtype: 'float32', dims: [a.floats.length], data: Float32Array.from(a.floats) };
    case 'value_int':
      return { dtype: 'int64', dims: [], data: BigInt64Array.of(a.i) };
    case 'value_ints':
      return { dtype: 'int64', dims: [a.ints.length], data: BigInt64Array.from(a.ints) };
    case 'value_string':
      return { dtype: 'string', dims: [], data: [decoder.decode(a.s)] };
    case 'value_strings':
      return { dtype: 'string', dims: [a.strings.length], data: a.strings.map((s) => decoder.decode(s)) };
    case 'sparse_value':
      throw new OutpostError('MODEL_UNSUPPORTED', `Constant ${node.name} holds a sparse tensor`);
  }
  throw new OutpostError('MODEL_INVALID', `Constant ${node.name} has attribute "${a.name}" without a usable value`);
}
