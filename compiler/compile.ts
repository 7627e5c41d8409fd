import { rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, extname, join } from 'node:path';
import { packArtifact, sha256File, type PostprocessStep, type Precision } from '../runtime/artifact/index.js';
import { OutpostError } from '../runtime/errors.js';
import { logger } from '../runtime/log.js';
import { parsePreprocessSpec } from '../runtime/pipeline/index.js';
import { readBytes } from '../runtime/tensor/index.js';
import type { CalibrationMethod } from './calibration/calibrators.js';
import { DEFAULT_BUDGET, type AccuracyBudget } from './evaluate/budget.js';
import { Evaluator, type RunBudget } from './evaluate/evaluator.js';
import { chooseFormat } from './formats.js';
import { compileInputs } from './inputs.js';
import { loadModel as loadOnnx, saveModel } from './onnx/index.js';
import { checkWritable, inputSpecs, nameNodes, precisionPlan } from './prepare.js';
import { compileBaseline } from './baseline.js';
import { writeCompiledArtifact } from './output.js';
import { fixInputShapes } from './passes/fix-input-shapes.js';
import { usesFloat16 } from './passes/ort-offline.js';
import { emptyReport, type PassContext } from './passes/types.js';
import { widenFloat16 } from './passes/widen-fp16.js';
import type { CompileReport } from './report.js';
import { rankAndReport } from './select.js';
import { resolveTarget } from './targets/index.js';
import {
  buildFp16,
  buildFp32,
  buildInt8,
  type BuiltVariant,
  type QuantizationMode,
  type VariantContext,
} from './variants.js';

const log = logger('compiler');

export interface CompileOptions {
  readonly model: string;
  readonly target: string;
  /** Artifact directory, or a path ending in .tar.gz for a packed artifact. */
  readonly output: string;
  readonly precision?: 'auto' | Precision;
  readonly inputShapes?: Readonly<Record<string, readonly number[]>>;
  /** A directory or file of .npy/.json tensors or images, or "synthetic" (the default, with a warning). */
  readonly calibration?: string;
  readonly calibrationMethod?: CalibrationMethod;
  /** Inputs the drift baseline describes (default: the calibration and held-out samples). */
  readonly baseline?: string;
  readonly quantization?: QuantizationMode;
  /** Node names or op types that must be quantised (static): one that cannot be fails the compile, naming it. */
  readonly requireQuantized?: readonly string[];
  readonly preprocess?: string;
  readonly budget?: AccuracyBudget;
  readonly allowAccuracyLoss?: boolean;
  /** Measure every variant here and choose (always for `host`). */
  readonly tune?: boolean;
  /** Ship variants in ONNX Runtime's own format where both backends read it (default: for host targets). */
  readonly ortFormat?: boolean;
  readonly signKey?: string;
  readonly name?: string;
  readonly version?: string;
  readonly labels?: string;
  readonly postprocess?: readonly PostprocessStep[];
  readonly overwrite?: boolean;
  /** Time and memory each model run may take (default: `defaultRunBudget()`). */
  readonly runBudget?: RunBudget;
  /** Progress of each long phase: `stage` names it ("calibrate", "grade int8", …), `done` of `total` runs. */
  readonly onProgress?: (stage: string, done: number, total: number) => void;
  /** Aborting stops the evaluator and removes the work directory at once; the compile then rejects. */
  readonly signal?: AbortSignal;
  /**
   * An evaluator to run the models in (batch callers reuse one across compiles); default: one of this compile's
   * own, ended with it. `runBudget` and `onProgress` then come from the evaluator.
   */
  readonly evaluator?: Evaluator;
}

/**
 * `outpost compile`: a model and a target in, a signed, self-describing artifact out. Variants per the target's
 * precision plan, each graded against the fp32 original on held-out inputs; nothing outside the budget ships
 * unless asked (and then flagged). Written to a temporary directory and renamed into place when complete.
 */
export async function compile(options: CompileOptions): Promise<CompileReport> {
  const started = performance.now();
  options.signal?.throwIfAborted();
  const { profile: target, host } = resolveTarget(options.target);
  await checkWritable(options.output);
  const workDir = await mkdtemp(join(tmpdir(), 'outpost-compile-'));
  const own = options.evaluator === undefined;
  const evaluator =
    options.evaluator ??
    new Evaluator({
      ...(options.runBudget === undefined ? {} : { budget: options.runBudget }),
      ...(options.onProgress === undefined ? {} : { onProgress: options.onProgress }),
    });
  // An interrupted compile leaves nothing behind: the evaluator is killed and the work directory removed now,
  // not when the step in flight gets round to noticing.
  const onAbort = (): void => {
    evaluator.close();
    rmSync(workDir, { recursive: true, force: true });
  };
  options.signal?.addEventListener('abort', onAbort, { once: true });
  const pass: PassContext = { target, host, workDir, report: emptyReport() };
  try {
    return await run(options, { target, host, pass, evaluator, started });
  } catch (error) {
    throw options.signal?.aborted === true ? (options.signal.reason as Error) : error;
  } finally {
    options.signal?.removeEventListener('abort', onAbort);
    if (own) evaluator.close();
    await rm(workDir, { recursive: true, force: true });
  }
}

async function run(
  options: CompileOptions,
  env: {
    target: PassContext['target'];
    host: boolean;
    pass: PassContext;
    evaluator: Evaluator;
    started: number;
  },
): Promise<CompileReport> {
  const { target, host, pass, evaluator } = env;
  const progress = (stage: string, done: number, total: number) => options.onProgress?.(stage, done, total);
  let model = await loadOnnx(options.model, { externalData: 'lazy' });
  if (options.inputShapes !== undefined && Object.keys(options.inputShapes).length > 0) {
    model = await fixInputShapes(model, pass, { shapes: options.inputShapes });
  }
  nameNodes(model);
  const original = join(pass.workDir, 'original.onnx');
  await saveModel(model, original);
  const { inputs, outputs } = inputSpecs(model);
  // A model exported in float16 is widened first: every variant is planned from float32, as for any model.
  if (usesFloat16(model)) model = await widenFloat16(model, pass, undefined);

  const [firstInput] = inputs;
  const preprocess =
    options.preprocess === undefined || firstInput === undefined
      ? undefined
      : parsePreprocessSpec(options.preprocess, firstInput.name);
  const data = await compileInputs({
    model,
    original,
    inputs,
    calibration: options.calibration ?? 'synthetic',
    ...(preprocess === undefined ? {} : { preprocess }),
    evaluator,
  });
  pass.report.warnings.push(...data.warnings);

  const budget = options.budget ?? DEFAULT_BUDGET;
  const ctx: VariantContext = {
    pass,
    model,
    reference: data.reference,
    evaluator,
    budget,
    synthetic: data.synthetic,
    calibration: data.calibration,
    method: options.calibrationMethod ?? 'minmax',
    quantization: options.quantization ?? 'auto',
    requireQuantized: options.requireQuantized ?? [],
    onProgress: options.onProgress,
  };
  const explicit = options.precision !== undefined && options.precision !== 'auto';
  const planned = precisionPlan(options.precision, target.precisions);
  // Without inputs the original accepts, only fp32 (ORT's own semantics-preserving rewrite) may ship, ungraded.
  const plan = data.reference === undefined ? planned.filter((p) => p === 'fp32') : planned;
  const unplanned = planned.filter((p) => !plan.includes(p));
  if (plan.length === 0) {
    throw new OutpostError(
      'CALIBRATION_INVALID',
      `--precision ${planned.join(', ')} needs graded inputs: ${data.ungraded ?? ''}`,
    );
  }
  const built: BuiltVariant[] = [];
  for (const precision of plan) {
    progress(`build ${precision}`, built.length, plan.length);
    built.push(
      precision === 'int8' ? await buildInt8(ctx) : precision === 'fp16' ? await buildFp16(ctx) : await buildFp32(ctx),
    );
  }
  progress('build', plan.length, plan.length);

  // The gate: within budget ships; outside it ships only under --allow-accuracy-loss, flagged. A build that is not
  // what its name says (an "int8" that quantised nothing) never ships.
  const shipped = built.filter(
    (v) => v.dropped === undefined && (v.misses.length === 0 || options.allowAccuracyLoss === true),
  );
  const rejected = [
    ...built
      .filter((v) => !shipped.includes(v))
      .map((v) => ({ id: v.id, precision: v.precision, reason: v.dropped ?? v.misses.join('; ') })),
    ...unplanned.map((p) => ({ id: p, precision: p, reason: `not built: ${data.ungraded ?? ''}` })),
  ];
  if (shipped.length === 0) {
    const why = rejected.map((r) => `${r.id}: ${r.reason}`).join(' | ');
    const accuracyOnly = built.every((v) => v.dropped === undefined);
    throw new OutpostError(
      accuracyOnly ? 'ACCURACY_BUDGET_MISSED' : 'QUANTIZATION_FAILED',
      `no variant can ship (${why})${explicit && accuracyOnly ? '; try --precision auto, a looser --accuracy-budget, or --allow-accuracy-loss' : ''}`,
      { details: { variants: rejected } },
    );
  }

  // Formats: ONNX Runtime's own format loads 2–3× faster; an optional form, judged like the variant (formats.ts).
  const ortWanted = options.ortFormat ?? host;
  const why = options.ortFormat === false ? '--no-ort-format' : 'cross-compiling: .onnx unless --ort-format';
  const formats = new Map<string, Awaited<ReturnType<typeof chooseFormat>>>();
  for (const v of shipped) formats.set(v.id, await chooseFormat(v, ctx, { ort: ortWanted, why }));

  // Selection: measured here for host/--tune; otherwise ranked by the target's plan, chosen by the device.
  const measure = host || options.tune === true;
  const latency = new Map<string, number>();
  const sample = data.evaluation[0];
  if (measure && sample !== undefined) {
    for (const v of shipped)
      latency.set(v.id, await evaluator.latencyP50(formats.get(v.id)?.path ?? v.path, sample, `benchmark ${v.id}`));
  }
  const { variants, report } = rankAndReport({
    target,
    shipped,
    rejected,
    formats,
    latency,
    measure,
    plan,
    data,
    ctx,
    warnings: pass.report.warnings,
  });

  progress('baseline', 0, 1);
  const baseline = await compileBaseline({
    data,
    original,
    inputs,
    ...((data.preprocess ?? preprocess) === undefined ? {} : { preprocess: data.preprocess ?? preprocess }),
    evaluator,
    ...(options.baseline === undefined ? {} : { source: options.baseline }),
    warnings: pass.report.warnings,
  });
  progress('baseline', 1, 1);

  progress('write artifact', 0, 1);
  const packed = /\.(tar\.gz|tgz)$/.test(options.output);
  const dir = packed ? join(pass.workDir, 'artifact') : options.output;
  const written = await writeCompiledArtifact({
    out: dir,
    name: options.name ?? sanitize(basename(options.model, extname(options.model))),
    version: options.version ?? '1.0.0',
    target,
    inputs,
    outputs,
    variants,
    selection: report.selection,
    pipeline: {
      ...((data.preprocess ?? preprocess) ? { preprocess: data.preprocess ?? preprocess } : {}),
      postprocess: [...(options.postprocess ?? [])],
    },
    ...(options.labels === undefined ? {} : { labels: (await readBytes(options.labels)).toString('utf8') }),
    vectors: testVectors(data, pass.report.warnings),
    ...(baseline === undefined ? {} : { baseline }),
    source: { file: options.model, sha256: (await sha256File(options.model)).sha256 },
    report,
    ...(options.signKey === undefined ? {} : { signingKey: options.signKey }),
    overwrite: options.overwrite ?? false,
  });
  if (packed) await packArtifact(dir, options.output, { overwrite: options.overwrite ?? false });
  progress('write artifact', 1, 1);
  const sizes = new Map(written.manifest.variants.map((v) => [v.id, v.bytes]));
  const final: CompileReport = {
    ...report,
    variants: report.variants.map((v) => ({ ...v, bytes: sizes.get(v.id) ?? 0 })),
    output: options.output,
    seconds: (performance.now() - env.started) / 1000,
  };
  log.info({ target: target.key, selected: final.selected, seconds: final.seconds }, 'compiled');
  return final;
}

/** Test vectors shipped for the device's self-test. */
const TEST_VECTORS = 2;

/** The first held-out samples and the original's outputs; string tensors have no .npy form and are left out. */
function testVectors(data: Awaited<ReturnType<typeof compileInputs>>, warnings: string[]) {
  const vectors = (data.reference?.samples ?? [])
    .slice(0, TEST_VECTORS)
    .map((feeds, i) => ({ feeds, outputs: data.reference?.outputs[i] ?? {} }));
  const numeric = vectors.filter(
    (v) => ![...Object.values(v.feeds), ...Object.values(v.outputs)].some((t) => Array.isArray(t.data)),
  );
  if (numeric.length < vectors.length)
    warnings.push('no test vectors: the model reads or writes string tensors, which .npy cannot hold');
  return numeric;
}

function sanitize(name: string): string {
  return name.replace(/[^A-Za-z0-9._-]/g, '-').replace(/^[^A-Za-z0-9]+/, '') || 'model';
}
