import { mkdtemp } from 'node:fs/promises';
import { join } from 'node:path';
import type { InferenceSession } from 'onnxruntime-common';
import type * as OrtNodeModule from 'onnxruntime-node';
import { OutpostError, messageOf } from '../../runtime/errors.js';
import { logger } from '../../runtime/log.js';
import {
  PROTOBUF_LIMIT,
  loadModel,
  modelGraphs,
  saveModel,
  tensorByteLength,
  usesExternalData,
  modelTensors,
  type OnnxModel,
} from '../onnx/index.js';

/**
 * ONNX Runtime as an offline tool: write a model to the work directory, open an onnxruntime-node session on it with
 * `optimizedModelFilePath` set, and let ORT write the graph it would run (graph-optimizations.md, "Online/offline
 * mode"). The optimise, ORT-format and shape passes share this.
 */
const log = logger('compiler.ort');

/** ONNX Runtime's graph optimisation levels, as its JS API names them (SessionOptions.graphOptimizationLevel). */
export const OPTIMIZATION_LEVELS = Object.freeze(['disabled', 'basic', 'extended', 'layout', 'all'] as const);
export type OptimizationLevel = (typeof OPTIMIZATION_LEVELS)[number];

type OrtNode = typeof OrtNodeModule;
let ortNode: Promise<OrtNode> | undefined;

/** onnxruntime-node, imported on first use so loading the compiler does not load the native addon. */
export function onnxruntimeNode(): Promise<OrtNode> {
  ortNode ??= import('onnxruntime-node');
  return ortNode;
}

/**
 * Whether the model should be written with external data: it already keeps tensors outside, or its tensors come near
 * protobuf's 2 GiB limit. ORT then writes its output the same way (session.optimized_model_external_initializers_*).
 */
export function needsExternalData(model: OnnxModel): boolean {
  let bytes = 0;
  for (const { tensor } of modelTensors(model.proto)) {
    if (usesExternalData(tensor)) return true;
    bytes += tensorByteLength(tensor) ?? 0;
  }
  return bytes > PROTOBUF_LIMIT / 2;
}

/** A fresh directory under `workDir` holding the model as `model.onnx` (plus `model.onnx.data` when large). */
export async function writeWorkModel(
  model: OnnxModel,
  workDir: string,
  stem: string,
): Promise<{ dir: string; path: string; external: boolean }> {
  const dir = await mkdtemp(join(workDir, `${stem}-`));
  const path = join(dir, 'model.onnx');
  const external = needsExternalData(model);
  await saveModel(model, path, {
    durable: false,
    ...(external ? { externalData: { location: 'model.onnx.data' } } : {}),
  });
  return { dir, path, external };
}

export interface OrtWriteOptions {
  readonly level: OptimizationLevel;
  readonly format: 'onnx' | 'ort';
  /**
   * ORT's `session.qdqisint8allowed`. ORT's extended level rewrites int8 (S8) QDQ to uint8 on x86 builds and keeps it
   * on ARM builds (QDQIsInt8Allowed(), qdq_selector_action_transformer.h); set it to the target's answer so a model
   * optimised on an x86 host for an ARM target keeps ARM's choice. Undefined leaves this build's default.
   */
  readonly qdqInt8Allowed?: boolean;
  /** File name stem inside the work directory. */
  readonly stem?: string;
}

export interface OrtWritten {
  /** The file ORT wrote (.onnx or .ort). */
  readonly path: string;
  /** The model as it was handed to ORT. */
  readonly inputPath: string;
  /** Session creation, including optimisation and writing. */
  readonly ms: number;
}

/** Has ORT optimise the model at `level` and write the result into a fresh directory under `workDir`. */
export async function writeThroughOrt(
  model: OnnxModel,
  workDir: string,
  options: OrtWriteOptions,
): Promise<OrtWritten> {
  const ort = await onnxruntimeNode();
  const input = await writeWorkModel(model, workDir, options.stem ?? `ort-${options.level}`);
  const path = join(input.dir, options.format === 'ort' ? 'model.ort' : 'optimized.onnx');
  const session: Record<string, string> = { save_model_format: options.format === 'ort' ? 'ORT' : 'ONNX' };
  if (options.qdqInt8Allowed !== undefined) session.qdqisint8allowed = options.qdqInt8Allowed ? '1' : '0';
  if (input.external && options.format === 'onnx') {
    session.optimized_model_external_initializers_file_name = 'optimized.onnx.data';
    session.optimized_model_external_initializers_min_size_in_bytes = '1024'; // bytes, onnx's size_threshold
  }
  const started = performance.now();
  let created: InferenceSession;
  try {
    created = await ort.InferenceSession.create(input.path, {
      executionProviders: ['cpu'],
      graphOptimizationLevel: options.level,
      optimizedModelFilePath: path,
      logSeverityLevel: 3,
      extra: { session },
    });
  } catch (error) {
    throw new OutpostError(
      'MODEL_UNSUPPORTED',
      `ONNX Runtime ${ort.env.versions.node ?? ''} could not optimise ${model.source} at level "${options.level}": ${messageOf(error)}`,
      { cause: error, details: { model: model.source, level: options.level, format: options.format } },
    );
  }
  await created.release();
  const ms = performance.now() - started;
  log.debug({ model: model.source, level: options.level, format: options.format, path, ms }, 'ORT wrote the model');
  return { path, inputPath: input.path, ms };
}

/**
 * Loads a model ORT wrote and tidies what ORT adds without meaning: its saved models import every operator-set
 * domain the build knows (ai.onnx.ml, training, nchwc, …); the ones no node uses and the original did not import are
 * dropped. The result's external data (if any) stays in the work directory.
 */
export async function loadOrtOutput(path: string, original: OnnxModel): Promise<OnnxModel> {
  const model = await loadModel(path);
  const used = new Set<string>(['']);
  for (const graph of modelGraphs(model.proto)) for (const node of graph.node) used.add(node.domain);
  for (const fn of model.proto.functions) for (const node of fn.node) used.add(node.domain);
  const declared = new Set(original.proto.opsetImport.map((o) => o.domain));
  const norm = (d: string): string => (d === 'ai.onnx' ? '' : d);
  model.proto.opsetImport = model.proto.opsetImport.filter((o) => used.has(norm(o.domain)) || declared.has(o.domain));
  return { ...model, source: original.source };
}

/** Graph input and output names, in order: the interface a pass must not change. */
export function interfaceNames(model: OnnxModel): { inputs: string[]; outputs: string[] } {
  const graph = model.proto.graph;
  const initializers = new Set(graph?.initializer.map((t) => t.name));
  return {
    inputs: (graph?.input ?? []).filter((i) => !initializers.has(i.name)).map((i) => i.name),
    outputs: (graph?.output ?? []).map((o) => o.name),
  };
}

/** INTERNAL when ORT changed the graph's interface (it never should: callers bind inputs and outputs by name). */
export function assertSameInterface(before: OnnxModel, after: OnnxModel, what: string): void {
  const a = interfaceNames(before);
  const b = interfaceNames(after);
  const same = (x: string[], y: string[]): boolean => x.length === y.length && x.every((n, i) => n === y[i]);
  if (!same(a.inputs, b.inputs) || !same(a.outputs, b.outputs)) {
    throw new OutpostError(
      'INTERNAL',
      `${what} changed the graph interface of ${before.source}: inputs [${a.inputs.join(', ')}] → [${b.inputs.join(', ')}], outputs [${a.outputs.join(', ')}] → [${b.outputs.join(', ')}]`,
      { details: { before: a, after: b } },
    );
  }
}

/**
 * Whether the model computes in float16 anywhere: float16 tensors, declared values, Casts to FLOAT16, or a node
 * other than a Cast reading a float16 graph input (onnx.proto TensorProto.DataType FLOAT16 = 10). Float16 at the
 * model's interface alone — a graph input read only through Casts, a graph output written by a Cast — is not fp16
 * compute (the widened fp16 exports of widen-fp16.ts look so). ORT's CPU EP rewrites fp16 compute at every level,
 * even 'disabled' (InsertCastTransformer wraps nodes it has no fp16 kernel for in Casts; ops without one may be
 * expanded to their function body), so what ORT writes then reflects this CPU's kernels, not the target's.
 */
export function usesFloat16(model: OnnxModel): boolean {
  const FLOAT16 = 10;
  const half = (v: { type?: { value: { case: string | undefined; value?: unknown } } }): boolean =>
    v.type?.value.case === 'tensorType' && (v.type.value.value as { elemType: number }).elemType === FLOAT16;
  for (const { tensor } of modelTensors(model.proto)) if (tensor.dataType === FLOAT16) return true;
  const main = model.proto.graph;
  const interfaceInputs = new Set(main?.input.filter(half).map((v) => v.name));
  const interfaceOutputs = new Set(main?.output.filter(half).map((v) => v.name));
  for (const graph of modelGraphs(model.proto)) {
    const lists = graph === main ? [graph.valueInfo] : [graph.input, graph.output, graph.valueInfo];
    for (const list of lists) for (const v of list) if (half(v)) return true;
    for (const node of graph.node) {
      const toHalf = node.opType === 'Cast' && node.attribute.some((a) => a.name === 'to' && a.i === BigInt(FLOAT16));
      if (toHalf && !(graph === main && node.output.every((o) => interfaceOutputs.has(o)))) return true;
      if (graph === main && node.opType !== 'Cast' && node.input.some((i) => interfaceInputs.has(i))) return true;
    }
  }
  return false;
}
