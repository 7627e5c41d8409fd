import { readdir, stat } from 'node:fs/promises';
import { extname, join } from 'node:path';
import type { ImagePreprocess, TensorSpec } from '../../runtime/artifact/index.js';
import { OutpostError, fromFsError, isOutpostError } from '../../runtime/errors.js';
import { type Feeds, InputValidator } from '../../runtime/model/index.js';
import { guessImagePreprocess, imageToTensor, IMAGE_EXTENSIONS } from '../../runtime/pipeline/index.js';
import { readBytes, readTensorFile, type FeedMap } from '../../runtime/tensor/index.js';

/**
 * Calibration and evaluation inputs from `--calibration <dir|file>`: `.npy`/`.json` tensors, or images
 * pre-processed by the `--preprocess` spec (synthetic inputs are synthetic.ts's). Every sample is checked against
 * the model's inputs before anything runs, so a wrong tensor is an error naming its file, not an ONNX Runtime
 * failure.
 */
export interface SampleSet {
  readonly samples: Feeds[];
  readonly synthetic: boolean;
  /** What the samples came from, for the report. */
  readonly source: string;
  /** The image pre-processing used, to record in the artifact's pipeline. */
  readonly preprocess?: ImagePreprocess;
}

export interface SampleOptions {
  /** Model inputs with `--input-shape` bindings applied. */
  readonly inputs: readonly TensorSpec[];
  readonly bindings: Readonly<Record<string, number>>;
  readonly preprocess?: ImagePreprocess;
  /** The cap on samples read from disk (default 512). */
  readonly limit?: number;
}

const TENSOR_EXTENSIONS: ReadonlySet<string> = new Set(['.npy', '.json']);

async function listFiles(path: string): Promise<{ files: string[]; isDir: boolean }> {
  const info = await stat(path).catch((error: unknown) => {
    throw fromFsError(error, path, 'read');
  });
  if (!info.isDirectory()) return { files: [path], isDir: false };
  const entries = await readdir(path, { withFileTypes: true });
  return { files: entries.map((e) => join(path, e.name)).sort(), isDir: true };
}

/** A batch of N along axis 0 becomes N samples of batch 1, when the model's batch dimension is symbolic or 1. */
function splitBatch(feeds: FeedMap, inputs: readonly TensorSpec[]): FeedMap[] {
  const [first] = inputs;
  const tensor = first === undefined ? undefined : feeds[first.name];
  const batch = tensor?.dims[0];
  if (inputs.length !== 1 || first === undefined || tensor === undefined || batch === undefined || batch <= 1)
    return [feeds];
  if (first.shape[0] !== 1 && typeof first.shape[0] !== 'string') return [feeds];
  if (tensor.dims.length !== first.shape.length) return [feeds];
  const per = tensor.data.length / batch;
  return Array.from({ length: batch }, (_, i) => ({
    [first.name]: {
      data: tensor.data.slice(i * per, (i + 1) * per),
      dims: [1, ...tensor.dims.slice(1)],
      type: tensor.type,
    },
  }));
}

function check(validator: InputValidator, feeds: FeedMap, what: string): FeedMap {
  try {
    validator.check(feeds);
  } catch (error) {
    if (isOutpostError(error)) {
      throw new OutpostError('CALIBRATION_INVALID', `calibration sample ${what}: ${error.message}`, {
        cause: error,
        details: { file: what, ...error.details },
      });
    }
    throw error;
  }
  return feeds;
}

export async function loadSamples(source: string, options: SampleOptions): Promise<SampleSet> {
  const validator = new InputValidator(options.inputs, options.bindings);
  const { files, isDir } = await listFiles(source);
  const limit = options.limit ?? 512;
  const images = files.filter((f) => IMAGE_EXTENSIONS.has(extname(f).toLowerCase()));
  const tensors = files.filter((f) => TENSOR_EXTENSIONS.has(extname(f).toLowerCase()));
  const samples: Feeds[] = [];
  if (images.length > 0 && tensors.length === 0) {
    const [input, ...others] = options.inputs;
    if (input === undefined || others.length > 0) {
      throw new OutpostError(
        'CALIBRATION_INVALID',
        `${source}: images calibrate single-input models; this one has ${options.inputs.map((i) => i.name).join(', ')}`,
      );
    }
    const bound = { ...input, shape: input.shape.map((d) => (typeof d === 'string' ? (options.bindings[d] ?? d) : d)) };
    const preprocess = options.preprocess ?? guessImagePreprocess(bound);
    if (preprocess === undefined) {
      throw new OutpostError(
        'CALIBRATION_INVALID',
        `${source}: input "${input.name}" [${input.shape.join(', ')}] is not image-shaped with fixed H and W; give --preprocess (and --input-shape)`,
      );
    }
    for (const file of images.slice(0, limit)) {
      const tensor = await imageToTensor(await readBytes(file), preprocess).catch((error: unknown) => {
        throw new OutpostError(
          'CALIBRATION_INVALID',
          `calibration image ${file}: ${isOutpostError(error) ? error.message : String(error)}`,
          { cause: error },
        );
      });
      samples.push(check(validator, { [input.name]: tensor }, file));
    }
    return { samples, synthetic: false, source: `${images.length} images in ${source}`, preprocess };
  }
  if (tensors.length === 0) {
    throw new OutpostError(
      'CALIBRATION_INVALID',
      `${source}: no .npy, .json or image files${isDir ? ' in this directory' : ''}; or use --calibration synthetic`,
    );
  }
  for (const file of tensors) {
    const feeds = await readTensorFile(file, options.inputs).catch((error: unknown) => {
      throw isOutpostError(error)
        ? new OutpostError('CALIBRATION_INVALID', `calibration file ${file}: ${error.message}`, { cause: error })
        : error;
    });
    for (const sample of splitBatch(feeds, options.inputs)) {
      if (samples.length >= limit) break;
      samples.push(check(validator, sample, file));
    }
  }
  return { samples, synthetic: false, source: `${samples.length} samples from ${source}` };
}

/**
 * Splits samples into calibration and held-out evaluation sets: the accuracy gate must not grade on what the
 * quantiser calibrated with. One in four (at least one) is held back; with a single sample both use it (and the
 * report says so).
 */
export function holdOut(samples: readonly Feeds[]): { calibration: Feeds[]; evaluation: Feeds[]; overlap: boolean } {
  if (samples.length < 2) return { calibration: [...samples], evaluation: [...samples], overlap: true };
  const calibration: Feeds[] = [];
  const evaluation: Feeds[] = [];
  samples.forEach((s, i) => (i % 4 === 3 ? evaluation : calibration).push(s));
  if (evaluation.length === 0) {
    const last = calibration.pop();
    if (last !== undefined) evaluation.push(last);
  }
  return { calibration, evaluation, overlap: false };
}
