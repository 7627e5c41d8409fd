import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { OutpostError } from '../../runtime/errors.js';
import { logger } from '../../runtime/log.js';
import { mainGraph, saveModel, type GraphProto, type OnnxModel } from '../onnx/index.js';
import { constantSources } from '../quantize/constants.js';
import { Evaluator } from '../evaluate/evaluator.js';
import { inferValueTypes, withOutputs } from '../quantize/ort-model.js';
import { PREPARED_OPS, qdqOp } from '../quantize/qdq-ops.js';
import { createCalibrator, type CalibrationMethod, type CalibratorOptions, type TensorRange } from './calibrators.js';
import { checkSample, modelInputs, type CalibrationSample, type ModelInput } from './samples.js';

/**
 * Activation ranges for static quantisation: copies of the model expose the activations as extra graph outputs
 * (ORT's calibrator does the same, `augment_graph`), ONNX Runtime runs them on every sample in the evaluator process
 * (bounded per run), and a calibrator folds each tensor into its per-tensor state (a min/max or a fixed-size
 * histogram) and drops it. Memory does not depend on how many samples there are, nor on how large one sample's
 * activations are: each copy exposes one group of at most `maxFetchBytes` (ORT holds every graph output of a run
 * until it returns). The sessions run unoptimised so every named value exists as the original graph computes it.
 */
const log = logger('compiler.calibration');

export interface CollectOptions extends CalibratorOptions {
  readonly method: CalibrationMethod;
  /** Tensors to calibrate; default: float32 inputs and outputs of the main graph's quantisable nodes. */
  readonly tensors?: readonly string[];
  /** Where the scratch copy of the model goes (default: the OS temp directory). */
  readonly workDir?: string;
  readonly threads?: number;
  /** The process that runs the samples (default: one started for this call and ended after it). */
  readonly evaluator?: Evaluator;
  /** Leave out samples the model rejects (synthetic draws) instead of failing. */
  readonly skipFailures?: boolean;
  /** Activations one calibration run holds; a sample runs once per group (default CALIBRATION_FETCH_BYTES). */
  readonly maxFetchBytes?: number;
}

export interface CollectResult {
  readonly ranges: Map<string, TensorRange>;
  /** Samples that ran. */
  readonly observed: number;
  readonly failed: readonly { readonly index: number; readonly error: string }[];
}

export type { CalibrationSample } from './samples.js';

export const CALIBRATION_FETCH_BYTES = 512 * 2 ** 20; // bytes of activations one calibration run holds

/** Inputs and outputs of the nodes static quantisation may rewrite (constants aside). */
export function quantisableValues(graph: GraphProto): string[] {
  const constants = constantSources(graph);
  const names = new Set<string>();
  for (const node of graph.node) {
    if (qdqOp(node) === undefined && !PREPARED_OPS.has(node.opType)) continue;
    for (const name of [...node.input, ...node.output]) if (name !== '' && !constants.has(name)) names.add(name);
  }
  return [...names];
}

/**
 * Runs the model on every sample in the evaluator process (bounded per run, see evaluate/evaluator.ts) and returns
 * the calibrated range of each activation. Samples are checked against the model's inputs first. Samples the model
 * rejects fail the call unless `skipFailures` (synthetic draws), when they are left out and counted.
 */
export async function collectRangesDetailed(
  model: OnnxModel,
  samples: readonly CalibrationSample[],
  options: CollectOptions,
): Promise<CollectResult> {
  createCalibrator(options.method, options); // options checked here, before any work
  const graph = mainGraph(model.proto);
  const inputs = modelInputs(graph);
  const inputNames = new Set(inputs.map((i) => i.name));
  const produced = new Set(graph.node.flatMap((n) => n.output).filter((o) => o !== ''));
  const wanted = options.tensors ?? quantisableValues(graph);
  const missing = wanted.filter((t) => !produced.has(t) && !inputNames.has(t));
  if (missing.length > 0) {
    throw new OutpostError(
      'INVALID_ARGUMENT',
      `no value named ${missing.map((m) => `"${m}"`).join(', ')} in the main graph`,
      {
        details: { missing },
      },
    );
  }
  if (samples.length === 0) {
    throw new OutpostError('CALIBRATION_INVALID', 'no calibration samples were given; static quantisation needs some');
  }
  samples.forEach((sample, i) => checkSample(sample, i, inputs));
  const fromInputs = wanted.filter((t) => inputNames.has(t) && inputs.find((i) => i.name === t)?.dtype === 'float32');
  const candidates = [...new Set(wanted.filter((t) => produced.has(t)))];
  const workDir = options.workDir ?? tmpdir();
  const evaluator = options.evaluator ?? new Evaluator();
  const scratch = await mkdtemp(join(workDir, 'calibrate-'));
  try {
    const symbols = symbolSizes(inputs, samples[0] ?? {});
    const maxBytes = options.maxFetchBytes ?? CALIBRATION_FETCH_BYTES;
    const groups = await fetchGroups(model, candidates, workDir, maxBytes, symbols);
    const files = [];
    for (const [g, tensors] of groups.entries()) {
      const path = join(scratch, `group${g}.onnx`);
      await saveModel({ ...model, proto: withOutputs(model.proto, tensors) }, path, {
        externalData: { location: `group${g}.onnx.data` },
        durable: false, // scratch: a crash leaves nothing anyone reads
      });
      files.push({ model: path, tensors });
    }
    const result = await evaluator.calibrate({
      groups: files,
      inputs: fromInputs,
      samples,
      method: options.method,
      options: { bins: options.bins, percentile: options.percentile, levels: options.levels, stride: options.stride },
      ...(options.threads === undefined ? {} : { threads: options.threads }),
    });
    const [firstFailure] = result.failed;
    if (firstFailure !== undefined && options.skipFailures !== true) {
      throw new OutpostError(
        'INFERENCE_FAILED',
        `calibration sample ${firstFailure.index} failed to run: ${firstFailure.error}`,
        { details: { sample: firstFailure.index } },
      );
    }
    if (result.observed === 0) {
      throw new OutpostError(
        'CALIBRATION_INVALID',
        `the model rejected every calibration sample (sample ${firstFailure?.index ?? 0}: ${firstFailure?.error ?? '?'})`,
        { details: { failed: result.failed.length } },
      );
    }
    log.debug(
      { source: model.source, samples: result.observed, tensors: result.ranges.size, method: options.method },
      'ranges collected',
    );
    return { ranges: result.ranges, observed: result.observed, failed: result.failed };
  } finally {
    if (options.evaluator === undefined) evaluator.close();
    await rm(scratch, { recursive: true, force: true });
  }
}

/** Sizes of the symbolic dims of the graph inputs, as the sample binds them. */
function symbolSizes(inputs: readonly ModelInput[], sample: CalibrationSample): Map<string, number> {
  const sizes = new Map<string, number>();
  for (const input of inputs) {
    const dims = sample[input.name]?.dims ?? [];
    input.shape?.forEach((d, axis) => {
      const size = dims[axis];
      if (typeof d === 'string' && size !== undefined) sizes.set(d, size);
    });
  }
  return sizes;
}

/**
 * Splits the values to calibrate into groups of at most `maxBytes` of float32 activations, in graph order, from the
 * shapes ORT infers (values it cannot size go alone): ORT keeps every graph output of a run alive until it returns,
 * so a group is what one calibration run holds (evaluate/jobs.ts).
 */
async function fetchGroups(
  model: OnnxModel,
  names: readonly string[],
  workDir: string,
  maxBytes: number,
  symbols: ReadonlyMap<string, number>,
): Promise<string[][]> {
  if (names.length === 0) return [];
  const types = await inferValueTypes(model, names, workDir);
  const groups: string[][] = [];
  let current: string[] = [];
  let bytes = 0;
  for (const name of names) {
    const t = types.get(name);
    if (t !== undefined && t.dtype !== 'float32') continue; // only float32 values are quantised
    // Symbols the inputs bind take the first sample's sizes; others (ORT's unnamed ones) count as 1.
    const shape = (t?.shape ?? []).map((d) => (typeof d === 'number' ? d : (symbols.get(d) ?? 1)));
    const size = shape.length > 0 ? shape.reduce((a, d) => a * d, 4) : maxBytes;
    if (current.length > 0 && bytes + size > maxBytes) {
      groups.push(current);
      current = [];
      bytes = 0;
    }
    current.push(name);
    bytes += size;
  }
  if (current.length > 0) groups.push(current);
  return groups;
}

/** The calibrated range of each activation (see `collectRangesDetailed`). */
export async function collectRanges(
  model: OnnxModel,
  samples: readonly CalibrationSample[],
  options: CollectOptions,
): Promise<Map<string, TensorRange>> {
  return (await collectRangesDetailed(model, samples, options)).ranges;
}
