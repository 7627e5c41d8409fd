import { basename } from 'node:path';
import type { ImagePreprocess, TensorSpec } from '../runtime/artifact/index.js';
import type { Feeds } from '../runtime/model/index.js';
import { computeBaseline, type Baseline } from '../runtime/monitor/index.js';
import { loadSamples } from './calibration/data.js';
import type { Evaluator } from './evaluate/evaluator.js';
import type { CompileInputs } from './inputs.js';

/**
 * The drift baseline an artifact ships (`baseline.json`): statistics of the compile's inputs and of the fp32
 * original's outputs on them, the reference the device's monitor compares live traffic with. From the calibration
 * and held-out samples by default, or from `--baseline <dir>` (a separate, usually larger sample of real inputs).
 */
export interface BaselineOptions {
  readonly data: CompileInputs;
  /** The original model as saved in the work directory (what the reference runs). */
  readonly original: string;
  readonly inputs: readonly TensorSpec[];
  readonly preprocess?: ImagePreprocess;
  readonly evaluator: Evaluator;
  /** `--baseline <dir|file>`. */
  readonly source?: string;
  readonly warnings: string[];
}

export async function compileBaseline(options: BaselineOptions): Promise<Baseline | undefined> {
  const { data } = options;
  let samples: Feeds[];
  let source: string;
  if (options.source !== undefined) {
    const set = await loadSamples(options.source, {
      inputs: options.inputs,
      bindings: {},
      preprocess: options.preprocess ?? data.preprocess,
    });
    samples = set.samples;
    source = basename(options.source);
  } else {
    if (data.reference === undefined) return undefined; // nothing the original runs on: nothing to describe
    samples = data.overlap ? [...data.calibration] : [...data.calibration, ...data.evaluation];
    source = data.synthetic ? 'synthetic' : 'calibration';
    if (data.synthetic)
      options.warnings.push(
        'the drift baseline describes synthetic inputs: give --calibration or --baseline with real inputs for drift scores that mean something',
      );
  }
  const reference = await options.evaluator.reference(options.original, samples, {
    stage: 'baseline',
    skipFailures: options.source === undefined,
  });
  const layout = (options.preprocess ?? data.preprocess)?.layout;
  return computeBaseline(reference.samples, reference.outputs, { source, ...(layout === undefined ? {} : { layout }) });
}
