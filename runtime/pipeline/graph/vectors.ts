import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { OutpostError, fromFsError } from '../../errors.js';
import type { Manifest, TestVectors } from '../../artifact/manifest.js';
import type { TensorValue } from '../../backends/types.js';
import { decodeNpy, encodeNpy } from '../../tensor/npy.js';
import { allClose, type TensorLike } from '../../tensor/tensor.js';
import type { Pipeline } from './pipeline.js';

/*
 * A pipeline's test vectors (docs/pipelines.md, "Test vectors"): end-to-end samples recorded by `pipeline build`
 * (inputs → the pipeline's final outputs) in the manifest's `testVectors`, every file covered by its hashes. Numeric
 * tensors are `.npy`; a string tensor (OCR's `text`) is `.json` `{ "dims", "data" }`, compared exactly: the same
 * number of elements, each string equal. Numeric outputs are compared within the recorded tolerance (allclose).
 */

/** Samples one pipeline artifact may carry: each runs every step at install, on the device. */
export const MAX_PIPELINE_CASES = 4; // cases
/** One sample input file at most: the vectors ship with the artifact to every device. */
export const MAX_PIPELINE_CASE_BYTES = 4 * 1024 * 1024; // bytes

/** Boxes within ~1 % of their pixel coordinates, scores within 0.01: what a backend's rounding may move. */
export const DEFAULT_PIPELINE_TOLERANCE: TestVectors['tolerance'] = Object.freeze({ atol: 0.01, rtol: 0.01 });

export interface PipelineVector {
  readonly id: string;
  readonly inputs: Record<string, TensorLike>;
  readonly expected: Record<string, TensorLike>;
}

/** The file name a recorded tensor gets, by kind: strings as JSON, numbers as `.npy`. */
export function vectorFile(dir: string, id: string, tensor: string, value: TensorLike): string {
  const safe = tensor.replace(/[^A-Za-z0-9._-]/g, '_');
  return `${dir}/${id}/${safe}${Array.isArray(value.data) ? '.json' : '.npy'}`;
}

/** A tensor's bytes as a test-vector file (vectorFile's extension decides the encoding). */
export function encodeVectorTensor(value: TensorLike): Buffer {
  if (Array.isArray(value.data)) return Buffer.from(JSON.stringify({ dims: value.dims, data: value.data }));
  const npy = encodeNpy({ dtype: value.type ?? 'float32', shape: [...value.dims], data: value.data });
  return Buffer.from(npy.buffer, npy.byteOffset, npy.byteLength);
}

function decodeVectorTensor(bytes: Buffer, file: string): TensorLike {
  if (!file.endsWith('.json')) {
    const npy = decodeNpy(bytes, file);
    return { data: npy.data, dims: npy.shape, type: npy.dtype };
  }
  let raw: unknown;
  try {
    raw = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw new OutpostError('SELF_TEST_FAILED', `test vector file ${file} is not valid JSON`);
  }
  const { dims, data } = (raw ?? {}) as { dims?: unknown; data?: unknown };
  const strings = Array.isArray(data) && data.every((s) => typeof s === 'string');
  const shape = Array.isArray(dims) && dims.every((d) => Number.isInteger(d) && (d as number) >= 0);
  if (!strings || !shape) {
    throw new OutpostError(
      'SELF_TEST_FAILED',
      `test vector file ${file}: expected { "dims": [...], "data": [strings] }`,
    );
  }
  return { data: data, dims: dims as number[], type: 'string' };
}

/** The manifest's recorded cases, read from the (verified) artifact directory `dir`. */
export async function readPipelineVectors(dir: string, manifest: Manifest): Promise<PipelineVector[]> {
  const read = async (files: Readonly<Record<string, string>>) => {
    const out: Record<string, TensorLike> = {};
    for (const [name, file] of Object.entries(files)) {
      const path = join(dir, file);
      const bytes = await readFile(path).catch((error: unknown) => {
        throw fromFsError(error, path, 'read');
      });
      out[name] = decodeVectorTensor(bytes, file);
    }
    return out;
  };
  const cases: PipelineVector[] = [];
  for (const c of manifest.testVectors?.cases ?? []) {
    cases.push({ id: c.id, inputs: await read(c.inputs), expected: await read(c.outputs) });
  }
  return cases;
}

/** Why `actual` is not the recorded `expected`, or undefined when it is (strings exactly, numbers within tolerance). */
export function vectorMismatch(
  actual: TensorValue | undefined,
  expected: TensorLike,
  tolerance: TestVectors['tolerance'],
): string | undefined {
  if (actual === undefined) return 'no such output';
  const dims = (d: readonly number[]) => `[${d.join(', ')}]`;
  if (dims(actual.dims) !== dims(expected.dims)) return `shape ${dims(actual.dims)}, expected ${dims(expected.dims)}`;
  if (Array.isArray(expected.data) || Array.isArray(actual.data)) {
    const got = actual.data as readonly unknown[];
    const want = expected.data as readonly unknown[];
    const i = want.findIndex((s, k) => got[k] !== s);
    return i < 0 ? undefined : `[${i}]: got ${JSON.stringify(got[i])}, expected ${JSON.stringify(want[i])} (exact)`;
  }
  const check = allClose(actual.data, expected.data, tolerance.atol, tolerance.rtol, expected.type);
  return check.ok
    ? undefined
    : `[${check.index}]: got ${check.actual}, expected ${check.expected} (atol ${tolerance.atol}, rtol ${tolerance.rtol})`;
}

/**
 * Runs every recorded case through the opened pipeline (all its steps) and compares its outputs; throws
 * SELF_TEST_FAILED naming the case, the output and the first difference. Returns how many cases ran (0: none recorded).
 */
export async function checkPipelineVectors(pipeline: Pipeline, dir: string): Promise<number> {
  const tolerance = pipeline.manifest.testVectors?.tolerance ?? DEFAULT_PIPELINE_TOLERANCE;
  const cases = await readPipelineVectors(dir, pipeline.manifest);
  for (const vector of cases) {
    let outputs: Record<string, TensorValue>;
    try {
      ({ outputs } = await pipeline.run(vector.inputs));
    } catch (error) {
      const code = error instanceof OutpostError ? error.code : 'INTERNAL';
      throw new OutpostError('SELF_TEST_FAILED', `test vector ${vector.id}: [${code}] ${(error as Error).message}`, {
        cause: error,
        details: { vector: vector.id, code },
      });
    }
    for (const [name, expected] of Object.entries(vector.expected)) {
      const why = vectorMismatch(outputs[name], expected, tolerance);
      if (why !== undefined) {
        throw new OutpostError(
          'SELF_TEST_FAILED',
          `test vector ${vector.id}, output "${name}"${why.startsWith('[') ? '' : ': '}${why}`,
          {
            details: { vector: vector.id, output: name },
          },
        );
      }
    }
  }
  return cases.length;
}
