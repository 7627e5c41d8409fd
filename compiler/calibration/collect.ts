import { tmpdir } from 'node:os';
import * as ort from 'onnxruntime-node';
import { OutpostError, messageOf } from '../../runtime/errors.js';
import { logger } from '../../runtime/log.js';
import type { DType } from '../../runtime/tensor/dtype.js';
import type { TensorLike } from '../../runtime/tensor/tensor.js';
import { mainGraph, type GraphProto, type OnnxModel } from '../onnx/index.js';
import { constantSources } from '../quantize/constants.js';
import { openSession, withOutputs, withScratchFile } from '../quantize/ort-model.js';
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
  /** Called after each sample with how many have run. */
  readonly onProgress?: (done: number) => void;
  /** Where the scratch copy of the model goes (default: the OS temp directory). */
  readonly workDir?: string;
  readonly threads?: number;
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

function feedsOf(sample: CalibrationSample, dtypes: Readonly<Record<string, DType>>): Record<string, ort.Tensor> {
  // The constructor's overloads are keyed by the literal dtype; checkSample has matched data and dtype.
  const Tensor = ort.Tensor as unknown as new (
    type: DType,
    data: TensorLike['data'],
    dims: readonly number[],
  ) => ort.Tensor;
  const feeds: Record<string, ort.Tensor> = {};
  for (const [name, t] of Object.entries(sample)) feeds[name] = new Tensor(dtypes[name] ?? 'float32', t.data, t.dims);
  return feeds;
}

export async function collectRanges(
  model: OnnxModel,
  samples: AsyncIterable<CalibrationSample> | Iterable<CalibrationSample>,
  options: CollectOptions,
): Promise<Map<string, TensorRange>> {
  const calibrator = createCalibrator(options.method, options);
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
  const fromInputs = wanted.filter((t) => inputNames.has(t) && inputs.find((i) => i.name === t)?.dtype === 'float32');
  const candidates = new Set(wanted.filter((t) => produced.has(t)));
  const proto = withOutputs(model.proto, [...candidates]);
  let count = 0;
  await withScratchFile(model, proto, options.workDir ?? tmpdir(), async (path) => {
    const session = await openSession(path, {
      graphOptimizationLevel: 'disabled',
      ...(options.threads === undefined ? {} : { intraOpNumThreads: options.threads }),
    });
    try {
      // Only float32 values are quantised; integer shape arithmetic among the requested values is left out.
      const fetches = session.outputMetadata
        .filter((m) => m.isTensor && m.type === 'float32' && candidates.has(m.name))
        .map((m) => m.name);
      for await (const sample of samples) {
        const dtypes = checkSample(sample, count, inputs);
        let results: ort.InferenceSession.ReturnType;
        try {
          results = await session.run(feedsOf(sample, dtypes), fetches);
        } catch (error) {
          throw new OutpostError('INFERENCE_FAILED', `calibration sample ${count} failed to run: ${messageOf(error)}`, {
            cause: error,
            details: { sample: count },
          });
        }
        for (const name of fetches) {
          const data = results[name]?.data;
          if (data instanceof Float32Array) calibrator.observe(name, data);
        }
        for (const name of fromInputs) {
          const data = sample[name]?.data;
          if (data instanceof Float32Array) calibrator.observe(name, data);
        }
        count += 1;
        options.onProgress?.(count);
      }
    } finally {
      await session.release();
    }
  });
  if (count === 0) {
    throw new OutpostError('CALIBRATION_INVALID', 'no calibration samples were given; static quantisation needs some');
  }
  const ranges = calibrator.ranges();
  log.debug({ source: model.source, samples: count, tensors: ranges.size, method: options.method }, 'ranges collected');
  return ranges;
}
