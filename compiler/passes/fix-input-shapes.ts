import { clearField, create } from '@bufbuild/protobuf';
import {
  TensorShapeProtoSchema,
  TensorShapeProto_DimensionSchema,
  TypeProto_TensorSchema,
  type GraphProto,
  type TensorShapeProto,
  type ValueInfoProto,
} from 'onnx-buf';
import { OutpostError } from '../../runtime/errors.js';
import { graphAndSubgraphs, mainGraph, valueTypes, type Dim, type OnnxModel } from '../onnx/index.js';
import { annotateShapes } from './shapes.js';
import type { Pass } from './types.js';

/**
 * `--input-shape name=1,3,224,224` (SageMaker Neo's DataInputConfig): fixes graph inputs' dimensions, for passes and
 * targets that need static shapes.
 *
 * What changes, and why:
 * - The named inputs get every dimension as a dim_value. A declared fixed dimension must match, and the rank must.
 * - Every symbol (dim_param) a named input binds is replaced by its size wherever the main graph's inputs and
 *   outputs use it: [onnx IR.md, "Static tensor shapes"] one dim_param names one size, so an input sharing `batch`
 *   with the fixed one is fixed too. Two bindings of one symbol to different sizes are INPUT_SHAPE_MISMATCH.
 * - value_info shapes are dropped (element types kept), in the main graph and every subgraph: value_info is a hint
 *   ONNX Runtime re-derives at load, and any of it may have been derived from the old dimensions (some exporters even
 *   record the export-time example sizes there). With `reinfer`, ORT's own inference then writes exact shapes back.
 */
export interface FixInputShapesOptions {
  /** Input name → its full shape (positive integers). */
  readonly shapes: Readonly<Record<string, readonly number[]>>;
  /** Write ONNX Runtime's inferred intermediate shapes into value_info afterwards (one session creation). */
  readonly reinfer?: boolean;
}

/** A graph input that still has a symbolic or unknown dimension (or no shape at all). */
export interface SymbolicInput {
  readonly name: string;
  /** Undefined when the input declares no shape (rank unknown). */
  readonly shape: Dim[] | undefined;
  /** Its symbols, unnamed dimensions as `name[axis]`. */
  readonly symbols: string[];
}

function formatShape(shape: readonly Dim[] | undefined): string {
  return shape === undefined ? '(no shape)' : `[${shape.map((d) => (d === null ? '?' : String(d))).join(', ')}]`;
}

/** Graph inputs (initializers excluded: they are overridable constants, not feeds). */
function realInputs(graph: GraphProto): ValueInfoProto[] {
  const initializers = new Set(graph.initializer.map((t) => t.name));
  return graph.input.filter((i) => !initializers.has(i.name));
}

/** The inputs a static-shape pass cannot accept yet: each with a symbolic or unknown dimension. */
export function symbolicInputs(model: OnnxModel): SymbolicInput[] {
  const graph = mainGraph(model.proto);
  const types = valueTypes(graph);
  const result: SymbolicInput[] = [];
  for (const input of realInputs(graph)) {
    const t = types.get(input.name);
    if (t === undefined || t.type !== 'tensor') continue;
    const symbols = (t.shape ?? []).flatMap((d, axis) =>
      typeof d === 'number' ? [] : [d ?? `${input.name}[${axis}]`],
    );
    if (t.shape === undefined || symbols.length > 0) result.push({ name: input.name, shape: t.shape, symbols });
  }
  return result;
}

/** SYMBOLIC_DIM_UNBOUND naming each input to fix, with the `--input-shape` that would, when any is symbolic. */
export function requireStaticInputs(model: OnnxModel, why: string): void {
  const open = symbolicInputs(model);
  if (open.length === 0) return;
  const hints = open.map(
    (i) =>
      `--input-shape ${i.name}=${(i.shape ?? ['<d0>', '<d1>', '…']).map((d) => (typeof d === 'number' ? d : `<${d ?? '?'}>`)).join(',')}`,
  );
  throw new OutpostError(
    'SYMBOLIC_DIM_UNBOUND',
    `${why} needs static input shapes; ${open.map((i) => `${i.name} ${formatShape(i.shape)}`).join(', ')} ${open.length === 1 ? 'is' : 'are'} not: pass ${hints.join(' ')}`,
    { details: { inputs: open } },
  );
}

function tensorShape(value: ValueInfoProto): TensorShapeProto | undefined {
  return value.type?.value.case === 'tensorType' ? value.type.value.value.shape : undefined;
}

function fixedDims(dims: readonly number[]): TensorShapeProto {
  return create(TensorShapeProtoSchema, {
    dim: dims.map((d) => create(TensorShapeProto_DimensionSchema, { value: { case: 'dimValue', value: BigInt(d) } })),
  });
}

function mismatch(input: string, message: string, details: Record<string, unknown>): OutpostError {
  return new OutpostError('INPUT_SHAPE_MISMATCH', `--input-shape ${input}: ${message}`, {
    details: { input, ...details },
  });
}

/** Checks one requested shape against the declaration and records the symbols it binds. */
function bind(
  input: ValueInfoProto,
  dims: readonly number[],
  bindings: Map<string, { size: number; input: string }>,
): void {
  const shape = tensorShape(input);
  if (shape === undefined) return; // no declared shape: any rank is accepted
  const declared = shape.dim.map((d) =>
    d.value.case === 'dimValue' ? Number(d.value.value) : d.value.case === 'dimParam' ? d.value.value : null,
  );
  if (declared.length !== dims.length) {
    throw mismatch(
      input.name,
      `${dims.length} dimensions [${dims.join(', ')}] given, the model declares rank ${declared.length} ${formatShape(declared)}`,
      { given: dims, declared },
    );
  }
  declared.forEach((d, axis) => {
    const size = dims[axis] as number;
    if (typeof d === 'number' && d !== size) {
      throw mismatch(input.name, `dimension ${axis} is fixed at ${d} in the model, ${size} given`, {
        axis,
        given: dims,
        declared,
      });
    }
    if (typeof d !== 'string') return;
    const previous = bindings.get(d);
    if (previous !== undefined && previous.size !== size) {
      throw mismatch(
        input.name,
        `dimension ${axis} is "${d}", which ${previous.input} already binds to ${previous.size}; ${size} given`,
        { axis, symbol: d, given: size, bound: previous },
      );
    }
    bindings.set(d, { size, input: input.name });
  });
}

/** Replaces bound symbols by their sizes in one declared shape; returns the symbols it replaced. */
function substitute(shape: TensorShapeProto | undefined, bindings: ReadonlyMap<string, { size: number }>): string[] {
  const replaced: string[] = [];
  for (const dim of shape?.dim ?? []) {
    if (dim.value.case !== 'dimParam') continue;
    const bound = bindings.get(dim.value.value);
    if (bound === undefined) continue;
    replaced.push(dim.value.value);
    dim.value = { case: 'dimValue', value: BigInt(bound.size) };
  }
  return replaced;
}

function checkDims(name: string, dims: readonly number[]): void {
  if (dims.length === 0 || dims.some((d) => !Number.isSafeInteger(d) || d < 1)) {
    throw new OutpostError(
      'INVALID_ARGUMENT',
      `--input-shape ${name}=${dims.join(',')}: expected one or more positive integers, e.g. ${name}=1,3,224,224`,
      { details: { input: name, dims } },
    );
  }
}

export const fixInputShapes: Pass<FixInputShapesOptions> = async (model, context, options) => {
  const graph = mainGraph(model.proto);
  const inputs = realInputs(graph);
  const bindings = new Map<string, { size: number; input: string }>();
  const types = valueTypes(graph);
  for (const [name, dims] of Object.entries(options.shapes)) {
    checkDims(name, dims);
    const input = inputs.find((i) => i.name === name);
    if (input === undefined) {
      const listed = inputs.map((i) => `${i.name} ${formatShape(types.get(i.name)?.shape)}`);
      throw new OutpostError(
        'INPUT_NAME_UNKNOWN',
        `--input-shape names "${name}", which is not an input of ${model.source}; inputs: ${listed.join(', ')}`,
        { details: { input: name, accepted: inputs.map((i) => i.name) } },
      );
    }
    if (input.type?.value.case !== 'tensorType') {
      throw mismatch(
        name,
        `the input is not a tensor (${input.type?.value.case ?? 'no type'}), so it has no shape`,
        {},
      );
    }
    bind(input, dims, bindings);
  }
  for (const [name, dims] of Object.entries(options.shapes)) {
    const input = inputs.find((i) => i.name === name);
    if (input?.type?.value.case === 'tensorType') input.type.value.value.shape = fixedDims(dims);
  }
  for (const input of inputs) {
    if (Object.hasOwn(options.shapes, input.name)) continue;
    const replaced = substitute(tensorShape(input), bindings);
    if (replaced.length > 0) {
      context.report.warnings.push(
        `input ${input.name}: ${replaced.map((s) => `"${s}" = ${bindings.get(s)?.size ?? '?'} (bound by ${bindings.get(s)?.input ?? '?'})`).join(', ')}`,
      );
    }
  }
  for (const output of graph.output) substitute(tensorShape(output), bindings);
  for (const g of graphAndSubgraphs(graph)) {
    for (const info of g.valueInfo) {
      if (info.type?.value.case === 'tensorType') clearField(info.type.value.value, TypeProto_TensorSchema.field.shape);
    }
  }
  return options.reinfer === true ? annotateShapes(model, context, { replace: true }) : model;
};
