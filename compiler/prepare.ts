import { access, constants, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Precision, TensorSpec } from '../runtime/artifact/index.js';
import { OutpostError, fromFsError } from '../runtime/errors.js';
import { mainGraph, NameGenerator, valueTypes, type OnnxModel } from './onnx/index.js';

/** The compile's first steps on its inputs: the output is writable, the model's interface, names, the plan. */
/** Fails before any work when the output cannot be written: its parent must be a writable directory. */
export async function checkWritable(output: string): Promise<void> {
  const parent = dirname(output);
  const info = await stat(parent).catch((error: unknown) => {
    throw fromFsError(error, parent, 'write');
  });
  if (!info.isDirectory()) {
    throw new OutpostError('OUTPUT_UNWRITABLE', `cannot write ${output}: ${parent} is not a directory`, {
      details: { path: output },
    });
  }
  await access(parent, constants.W_OK).catch((error: unknown) => {
    throw fromFsError(error, parent, 'write');
  });
}

/** Inputs as the artifact declares them: the model's, with `--input-shape` applied. */
export function inputSpecs(model: OnnxModel): { inputs: TensorSpec[]; outputs: TensorSpec[] } {
  const graph = mainGraph(model.proto);
  const types = valueTypes(graph);
  const initializers = new Set(graph.initializer.map((t) => t.name));
  const spec = (name: string): TensorSpec => {
    const t = types.get(name);
    if (t?.dtype === undefined)
      throw new OutpostError('MODEL_UNSUPPORTED', `${model.source}: "${name}" is not a tensor of a known type`);
    return { name, dtype: t.dtype, shape: (t.shape ?? []).map((d, axis) => d ?? `${name}[${axis}]`) };
  };
  return {
    inputs: graph.input.filter((i) => !initializers.has(i.name)).map((i) => spec(i.name)),
    outputs: graph.output.map((o) => spec(o.name)),
  };
}

/** Mixed-precision search and reports name nodes: give unnamed main-graph nodes stable names. */
export function nameNodes(model: OnnxModel): void {
  const names = new NameGenerator(model.proto);
  for (const node of mainGraph(model.proto).node) if (node.name === '') node.name = names.node(node.opType);
}

export function precisionPlan(requested: 'auto' | Precision | undefined, planned: readonly Precision[]): Precision[] {
  if (requested === undefined || requested === 'auto') return [...new Set([...planned, 'fp32' as const])];
  return [requested === 'mixed' ? 'int8' : requested];
}
