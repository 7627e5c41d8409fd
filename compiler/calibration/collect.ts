import { tmpdir } from 'node:os';
import { OutpostError } from '../../runtime/errors.js';
import { logger } from '../../runtime/log.js';
import { mainGraph, type GraphProto, type OnnxModel } from '../onnx/index.js';
import { constantSources } from '../quantize/constants.js';
import { Evaluator } from '../evaluate/evaluator.js';
import { withOutputs, withScratchFile } from '../quantize/ort-model.js';
import { PREPARED_OPS, qdqOp } from '../quantize/qdq-ops.js';
import { createCalibrator, type CalibrationMethod, type CalibratorOptions, type TensorRange } from './calibrators.js';
import { checkSample, modelInputs, type CalibrationSample } from './samples.js';

/**
 * Activation ranges for static quantisation: a copy of the model exposes the activations as extra graph outputs
 * (ORT's calibrator does the same, `augment_graph`), ONNX Runtime runs it on every sample, and a calibrator folds
 * each batch into its per-tensor state. One sample is in memory at a time, so memory does not depend on how many
 * samples there are; the session runs unoptimised so every named value exists as the original graph computes it.
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
}

export interface CollectResult {
  readonly ranges: Map<string, TensorRange>;
  /** Samples that ran. */
  readonly observed: number;
  readonly failed: readonly { readonly index: number; readonly error: string }[];
}

export type { CalibrationSample } from './samples.js';

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
  const proto = withOutputs(model.proto, candidates);
  const evaluator = options.evaluator ?? new Evaluator();
  try {
    const result = await withScratchFile(model, proto, options.workDir ?? tmpdir(), (path) =>
      evaluator.calibrate({
        model: path,
        tensors: candidates,
        inputs: fromInputs,
        samples,
        method: options.method,
        options: { bins: options.bins, percentile: options.percentile, levels: options.levels, stride: options.stride },
        ...(options.threads === undefined ? {} : { threads: options.threads }),
      }),
    );
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
  }
}

/** The calibrated range of each activation (see `collectRangesDetailed`). */
export async function collectRanges(
  model: OnnxModel,
  samples: readonly CalibrationSample[],
  options: CollectOptions,
): Promise<Map<string, TensorRange>> {
  return (await collectRangesDetailed(model, samples, options)).ranges;
}
