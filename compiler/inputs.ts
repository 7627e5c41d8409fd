import type { ImagePreprocess, TensorSpec } from '../runtime/artifact/index.js';
import { OutpostError, isOutpostError, messageOf } from '../runtime/errors.js';
import type { Feeds } from '../runtime/model/index.js';
import { holdOut, loadSamples } from './calibration/data.js';
import { FLAVOURS, syntheticSamples, type Flavour } from './calibration/synthetic.js';
import type { Evaluator, Reference } from './evaluate/evaluator.js';
import type { OnnxModel } from './onnx/index.js';

/**
 * The inputs a compile calibrates and grades on, and the original's outputs on the graded ones.
 *
 * With `--calibration <dir|file>` every sample must be one the original accepts (a user's sample it rejects is
 * their error, named). With synthetic data (the default), draws respect what each input means
 * (calibration/synthetic.ts); held-out draws the original rejects are left out of grading, and when it rejects
 * every draw of a flavour the next flavour is tried. When no flavour gives an input the original runs on, nothing
 * can be graded: `reference` is undefined and `ungraded` says why (the compile then ships only fp32, marked so).
 */
export interface CompileInputs {
  readonly calibration: Feeds[];
  readonly evaluation: Feeds[];
  readonly reference: Reference | undefined;
  readonly ungraded?: string;
  readonly synthetic: boolean;
  readonly source: string;
  readonly preprocess?: ImagePreprocess;
  /** The held-out set was also the calibration set (a single sample). */
  readonly overlap: boolean;
  readonly warnings: string[];
}

export interface InputOptions {
  readonly model: OnnxModel;
  /** The original model as saved in the work directory (what the reference runs). */
  readonly original: string;
  readonly inputs: readonly TensorSpec[];
  readonly calibration: string;
  readonly preprocess?: ImagePreprocess;
  readonly evaluator: Evaluator;
}

/** Synthetic samples per flavour tried (1 in 4 held out for grading). */
const SYNTHETIC_SAMPLES = 32;
const SYNTHETIC_SEED = 1234;

export async function compileInputs(options: InputOptions): Promise<CompileInputs> {
  if (options.calibration !== 'synthetic') return fromFiles(options);
  const warnings = [
    'calibration and evaluation used synthetic inputs (--calibration synthetic): accuracy figures describe random data, not yours',
  ];
  const why: string[] = [];
  for (const flavour of FLAVOURS) {
    const samples = syntheticSamples(options.model, {
      inputs: options.inputs,
      bindings: {},
      count: SYNTHETIC_SAMPLES,
      seed: SYNTHETIC_SEED,
      flavour,
    });
    const { calibration, evaluation, overlap } = holdOut(samples);
    let reference;
    try {
      reference = await options.evaluator.reference(options.original, evaluation, {
        stage: 'reference',
        skipFailures: true,
      });
    } catch (error) {
      if (!isOutpostError(error, 'EVALUATION_BUDGET_EXCEEDED') && !isOutpostError(error, 'INFERENCE_FAILED'))
        throw error;
      why.push(`${flavour}: ${messageOf(error)}`);
      continue;
    }
    const [first] = reference.failed;
    if (reference.samples.length === 0) {
      why.push(`${flavour}: ${first?.error ?? 'no sample ran'}`);
      continue;
    }
    if (first !== undefined) {
      warnings.push(
        `${reference.failed.length} of ${evaluation.length} held-out synthetic draws were rejected by the original model and left out of grading (sample ${first.index}: ${first.error.slice(0, 200)})`,
      );
    }
    if (flavour !== 'semantic') {
      warnings.push(
        `synthetic inputs: the original rejected the first draws (${why.join('; ').slice(0, 300)}); graded on "${flavour}" draws`,
      );
    }
    return {
      calibration,
      evaluation: [...reference.samples],
      reference,
      synthetic: true,
      source: flavour === 'semantic' ? 'synthetic' : `synthetic (${flavour})`,
      overlap,
      warnings,
    };
  }
  const ungraded = `no synthetic input the original model accepts (${why.map((w) => w.slice(0, 240)).join('; ')}); give --calibration with real inputs to grade it`;
  return {
    calibration: [],
    evaluation: [],
    reference: undefined,
    ungraded,
    synthetic: true,
    source: 'synthetic',
    overlap: false,
    warnings: [...warnings, `not graded: ${ungraded}`],
  };
}

async function fromFiles(options: InputOptions): Promise<CompileInputs> {
  const set = await loadSamples(options.calibration, {
    inputs: options.inputs,
    bindings: {},
    preprocess: options.preprocess,
  });
  const { calibration, evaluation, overlap } = holdOut(set.samples);
  const warnings = overlap ? ['only one sample: the accuracy gate evaluated on the calibration sample itself'] : [];
  let reference;
  try {
    reference = await options.evaluator.reference(options.original, evaluation, { stage: 'reference' });
  } catch (error) {
    if (!isOutpostError(error, 'INFERENCE_FAILED')) throw error;
    throw new OutpostError(
      'CALIBRATION_INVALID',
      `${options.calibration}: a held-out sample fails on the original model: ${messageOf(error)}`,
      { cause: error, details: error.details },
    );
  }
  return {
    calibration,
    evaluation,
    reference,
    synthetic: false,
    source: set.source,
    ...(set.preprocess === undefined ? {} : { preprocess: set.preprocess }),
    overlap,
    warnings,
  };
}

export type { Flavour };
