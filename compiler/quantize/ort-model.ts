import { mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { create } from '@bufbuild/protobuf';
import * as ort from 'onnxruntime-node';
import { ValueInfoProtoSchema, type GraphProto, type ModelProto, type ValueInfoProto } from 'onnx-buf';
import { OutpostError, messageOf } from '../../runtime/errors.js';
import { isDType, type DType } from '../../runtime/tensor/index.js';
import { mainGraph, saveModel, type OnnxModel } from '../onnx/index.js';

/**
 * Running a model as the compiler sees it (in memory, possibly with external data still on disk) under ONNX
 * Runtime: write a copy with extra graph outputs to a scratch file, open it, clean up. Used to read the dtype ORT
 * infers for every intermediate value and to fetch activations for calibration.
 */
export const SCRATCH_MODEL = 'model.onnx';

/** Quiet sessions: every failure reaches the caller as an OutpostError. */
const ORT_LOG_FATAL = 4;

/**
 * A shallow copy of the model whose main graph also outputs `extra` (names; a ValueInfo without a type lets ORT
 * infer it, one with a type declares it). Tensors are shared, not copied: the model may be large.
 */
export function withOutputs(model: ModelProto, extra: readonly (string | ValueInfoProto)[]): ModelProto {
  const graph = mainGraph(model);
  const existing = new Set(graph.output.map((o) => o.name));
  const added = extra
    .map((e) => (typeof e === 'string' ? create(ValueInfoProtoSchema, { name: e }) : e))
    .filter((v) => !existing.has(v.name));
  const copy: GraphProto = { ...graph, output: [...graph.output, ...added] };
  return { ...model, graph: copy };
}

/**
 * Saves `proto` (tensors of `model`, whose lazy external data is streamed) into a fresh directory under `workDir`,
 * runs `use` on the file's path and removes the directory, whatever happens.
 */
export async function withScratchFile<T>(
  model: OnnxModel,
  proto: ModelProto,
  workDir: string,
  use: (path: string) => Promise<T>,
): Promise<T> {
  const dir = await mkdtemp(join(workDir, 'ort-'));
  try {
    const path = join(dir, SCRATCH_MODEL);
    await saveModel({ ...model, proto }, path, {
      externalData: { location: `${SCRATCH_MODEL}.data` },
      durable: false, // scratch: a crash leaves nothing anyone reads
    });
    return await use(path);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export type SessionOptions = ort.InferenceSession.SessionOptions;

export async function openSession(path: string, options: SessionOptions = {}): Promise<ort.InferenceSession> {
  try {
    return await ort.InferenceSession.create(path, { logSeverityLevel: ORT_LOG_FATAL, ...options });
  } catch (error) {
    throw new OutpostError('SESSION_CREATE_FAILED', `ONNX Runtime could not load ${path}: ${messageOf(error)}`, {
      cause: error,
    });
  }
}

export interface InferredType {
  readonly dtype: DType | undefined;
  /** Dims ORT could infer: numbers, symbols, '' for unnamed; empty for a scalar or an unknown rank. */
  readonly shape: readonly (number | string)[];
}

/**
 * The element type (and what ORT knows of the shape) of every value in `names`, as ONNX Runtime's type inference
 * finds them: the values become graph outputs of a scratch copy, and the session's output metadata reports them.
 * Values that are not tensors (sequences, maps) get dtype undefined.
 */
export async function inferValueTypes(
  model: OnnxModel,
  names: readonly string[],
  workDir: string,
): Promise<Map<string, InferredType>> {
  const result = new Map<string, InferredType>();
  if (names.length === 0) return result;
  const proto = withOutputs(model.proto, names);
  await withScratchFile(model, proto, workDir, async (path) => {
    const session = await openSession(path, { graphOptimizationLevel: 'disabled' });
    try {
      for (const meta of session.outputMetadata) {
        result.set(
          meta.name,
          meta.isTensor
            ? { dtype: isDType(meta.type) ? meta.type : undefined, shape: meta.shape }
            : { dtype: undefined, shape: [] },
        );
      }
    } finally {
      await session.release();
    }
  });
  return result;
}

/** Every value the main graph's nodes produce, in graph order (Constant outputs too). */
export function nodeOutputs(graph: GraphProto): string[] {
  const names: string[] = [];
  for (const node of graph.node) for (const o of node.output) if (o !== '') names.push(o);
  return names;
}
