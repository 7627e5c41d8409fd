import { readFile, stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { OutpostError, fromFsError } from '../../runtime/errors.js';
import type { artifact } from '../../runtime/index.js';
import {
  DEFAULT_PIPELINE_TOLERANCE,
  MAX_PIPELINE_CASE_BYTES,
  MAX_PIPELINE_CASES,
  encodeVectorTensor,
  openPipeline,
  vectorFile,
} from '../../runtime/pipeline/index.js';
import { decodeNpy, type TensorLike } from '../../runtime/tensor/index.js';

/** Where the recorded cases go inside the artifact. */
const VECTORS_DIR = 'test-vectors';

export interface VectorSamples {
  /** One entry per case: pipeline input name → a file (absolute, or relative to `base`). */
  readonly cases: readonly Readonly<Record<string, string>>[];
  readonly tolerance?: artifact.TestVectors['tolerance'] | undefined;
  readonly base: string;
}

export interface RecordedVectors {
  readonly files: artifact.ArtifactFileSource[];
  readonly testVectors: artifact.TestVectors;
}

/**
 * The pipeline's end-to-end test vectors (docs/pipelines.md, "Test vectors"): each sample input is fed whole (an
 * image file's bytes to a uint8 [n] input) through the draft artifact in `draft`, and the final outputs recorded.
 * Bounded: at most MAX_PIPELINE_CASES cases of at most MAX_PIPELINE_CASE_BYTES per input file.
 */
export async function recordVectors(
  draft: string,
  inputs: readonly artifact.TensorSpec[],
  samples: VectorSamples,
): Promise<RecordedVectors> {
  if (samples.cases.length > MAX_PIPELINE_CASES) {
    throw new OutpostError(
      'PIPELINE_INVALID',
      `${samples.cases.length} test vector cases; a pipeline carries at most ${MAX_PIPELINE_CASES} (each runs at install on every device)`,
      { details: { cases: samples.cases.length, max: MAX_PIPELINE_CASES } },
    );
  }
  const pipeline = await openPipeline(draft);
  try {
    const files: artifact.ArtifactFileSource[] = [];
    const cases: artifact.TestVectors['cases'] = [];
    for (const [i, sample] of samples.cases.entries()) {
      const id = `case-${i}`;
      const feeds: Record<string, TensorLike> = {};
      for (const spec of inputs) {
        // A case of one bare file (`--test-input page.png`) feeds a pipeline of one input.
        const file = sample[spec.name] ?? (inputs.length === 1 ? sample[''] : undefined);
        if (file === undefined) {
          throw new OutpostError('PIPELINE_INVALID', `test vector ${id} gives no file for input "${spec.name}"`, {
            details: { case: id, input: spec.name, given: Object.keys(sample) },
          });
        }
        feeds[spec.name] = await readSample(resolve(samples.base, file), spec);
      }
      const unknown = Object.keys(sample).filter(
        (name) => !inputs.some((s) => s.name === name) && !(name === '' && inputs.length === 1),
      );
      if (unknown.length > 0) {
        throw new OutpostError('PIPELINE_INVALID', `test vector ${id} names unknown inputs: ${unknown.join(', ')}`, {
          details: { case: id, unknown, inputs: inputs.map((s) => s.name) },
        });
      }
      const { outputs } = await pipeline.run(feeds);
      const record = (kind: 'inputs' | 'outputs', tensors: Readonly<Record<string, TensorLike>>) =>
        Object.fromEntries(
          Object.entries(tensors).map(([name, value]) => {
            const path = vectorFile(`${VECTORS_DIR}/${kind}`, id, name, value);
            files.push({ path, from: encodeVectorTensor(value) });
            return [name, path];
          }),
        );
      cases.push({ id, inputs: record('inputs', feeds), outputs: record('outputs', outputs) });
    }
    return { files, testVectors: { tolerance: samples.tolerance ?? { ...DEFAULT_PIPELINE_TOLERANCE }, cases } };
  } finally {
    await pipeline.release();
  }
}

/** A sample file as the input's tensor: its bytes for an encoded-bytes input (uint8 [n]), else a `.npy`. */
async function readSample(path: string, spec: artifact.TensorSpec): Promise<TensorLike> {
  const info = await stat(path).catch((error: unknown) => {
    throw fromFsError(error, path, 'read');
  });
  if (info.size > MAX_PIPELINE_CASE_BYTES) {
    throw new OutpostError(
      'PIPELINE_INVALID',
      `test vector input ${path} is ${info.size} bytes; at most ${MAX_PIPELINE_CASE_BYTES} per input`,
      { details: { path, bytes: info.size, max: MAX_PIPELINE_CASE_BYTES } },
    );
  }
  const bytes = await readFile(path);
  if (spec.dtype === 'uint8' && spec.shape.length === 1 && !path.endsWith('.npy')) {
    return {
      data: new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength),
      dims: [bytes.length],
      type: 'uint8',
    };
  }
  const npy = decodeNpy(bytes, path);
  return { data: npy.data, dims: npy.shape, type: npy.dtype };
}
