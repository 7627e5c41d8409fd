import { OutpostError, messageOf } from '../../runtime/errors.js';
import type { DType } from '../../runtime/tensor/index.js';
import { makeValueInfo, mainGraph, type Dim, type OnnxModel } from '../onnx/index.js';
import { inferValueTypes as inferTypes, nodeOutputs } from '../quantize/ort-model.js';
import type { Pass } from './types.js';

/**
 * Types and shapes of every value in the main graph, as ONNX Runtime infers them. ORT's JS API has no shape
 * inference call, but a session reports the type and shape of each graph output it resolved; so a copy of the model
 * declares every node output a graph output (without a type: ORT infers it), a session is opened on it at level
 * 'disabled' (nothing rewritten, nothing run), and its output metadata is the answer. Subgraph (If/Loop body) values
 * cannot be graph outputs and are not reported.
 */
export interface InferredValue {
  readonly name: string;
  /** Undefined for non-tensor values (sequences, maps, optionals) and element types this build does not know. */
  readonly dtype: DType | undefined;
  /**
   * Fixed sizes, symbols (dim_param) and null for dimensions ORT could not name; undefined for non-tensors and when
   * ORT reports an empty shape (it does so for scalars and for unknown ranks alike).
   */
  readonly shape: Dim[] | undefined;
}

/**
 * Value name → inferred type and shape, for every node output of the main graph (and its declared outputs): the
 * quantiser's `inferValueTypes` (one implementation of the trick), with ORT's ways of saying "unknown" normalised.
 */
export async function inferValueTypes(model: OnnxModel, workDir: string): Promise<Map<string, InferredValue>> {
  const graph = mainGraph(model.proto);
  let types;
  try {
    types = await inferTypes(model, [...graph.output.map((o) => o.name), ...nodeOutputs(graph)], workDir);
  } catch (error) {
    throw new OutpostError(
      'MODEL_UNSUPPORTED',
      `ONNX Runtime could not infer the value types of ${model.source}: ${messageOf(error)}`,
      { cause: error, details: { model: model.source } },
    );
  }
  const result = new Map<string, InferredValue>();
  for (const [name, type] of types) {
    // ORT reports an unnamed dynamic dimension as '' (onnxruntime-node) or a negative / 2^32-1 number (web), and an
    // unknown rank like a scalar, as []: both become "shape unknown" (declaring rank 0 would be wrong for the first).
    const shape =
      type.shape.length === 0
        ? undefined
        : type.shape.map((d): Dim =>
            typeof d === 'string' ? (d === '' ? null : d) : d < 0 || d >= 0xffffffff ? null : d,
          );
    result.set(name, { name, dtype: type.dtype, shape });
  }
  return result;
}

export interface AnnotateShapesOptions {
  /** Replace value_info entries the model already has (default true: after a shape change they may be stale). */
  readonly replace?: boolean;
}

/**
 * Writes ORT's inferred type and shape of every intermediate main-graph value into graph.value_info (onnx IR.md,
 * "value_info ... used to store the type and shape information of values that are not inputs or outputs"). Graph
 * inputs and outputs keep their declarations.
 */
export const annotateShapes: Pass<AnnotateShapesOptions | undefined> = async (model, context, options) => {
  const inferred = await inferValueTypes(model, context.workDir);
  const graph = mainGraph(model.proto);
  const io = new Set([...graph.input.map((v) => v.name), ...graph.output.map((v) => v.name)]);
  const replace = options?.replace ?? true;
  const existing = new Set(graph.valueInfo.map((v) => v.name));
  if (replace) graph.valueInfo = graph.valueInfo.filter((v) => !inferred.has(v.name) || io.has(v.name));
  for (const value of inferred.values()) {
    if (io.has(value.name) || value.dtype === undefined || (!replace && existing.has(value.name))) continue;
    graph.valueInfo.push(makeValueInfo(value.name, value.dtype, value.shape));
  }
  return model;
};
