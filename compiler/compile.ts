import { access, constants, mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, extname, join } from 'node:path';
import { packArtifact, sha256File } from '../runtime/artifact/index.js';
import type { PostprocessStep, Precision, TensorSpec } from '../runtime/artifact/manifest.js';
import type { TensorValue } from '../runtime/backends/types.js';
import type { Feeds } from '../runtime/model/model.js';
import { OutpostError, fromFsError } from '../runtime/errors.js';
import { logger } from '../runtime/log.js';
import { parsePreprocessSpec } from '../runtime/pipeline/spec.js';
import { readBytes } from '../runtime/tensor/files.js';
import { holdOut, loadSamples } from './calibration/data.js';
import type { CalibrationMethod } from './calibration/calibrators.js';
import { latencyP50, reference } from './evaluate/evaluate.js';
import { DEFAULT_BUDGET, type AccuracyBudget } from './evaluate/budget.js';
import { loadModel as loadOnnx, mainGraph, NameGenerator, saveModel, valueTypes } from './onnx/index.js';
import { writeCompiledArtifact, type ShippedVariant } from './output.js';
import { fixInputShapes } from './passes/fix-input-shapes.js';
import { convertToOrtFormat } from './passes/ort-format.js';
import { emptyReport, type PassContext } from './passes/types.js';
import type { CompileReport, VariantReport } from './report.js';
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
  readonly onProgress?: (stage: string, done: number, total: number) => void;
}

/** Test vectors shipped for the device's self-test. */
const TEST_VECTORS = 2;

/** Fails before any work when the output cannot be written: its parent must be a writable directory. */
async function checkWritable(output: string): Promise<void> {
  const parent = dirname(output);
  const info = await stat(parent).catch((error: unknown) => {
    throw fromFsError(error, parent, 'write');
  });
  if (!info.isDirectory()) {
    throw new OutpostError('OUTPUT_UNWRITABLE', `cannot write ${output}: ${parent} is not a directory`, {
      details: { path: output },
    });
  }
  await access(parent, constants.W_OK).catch((error: unknown) => {
    throw fromFsError(error, parent, 'write');
  });
}

/** Inputs as the artifact declares them: the model's, with `--input-shape` applied. */
function inputSpecs(model: Awaited<ReturnType<typeof loadOnnx>>): { inputs: TensorSpec[]; outputs: TensorSpec[] } {
  const graph = mainGraph(model.proto);
  const types = valueTypes(graph);
  const initializers = new Set(graph.initializer.map((t) => t.name));
  const spec = (name: string): TensorSpec => {
    const t = types.get(name);
    if (t?.dtype === undefined)
      throw new OutpostError('MODEL_UNSUPPORTED', `${model.source}: "${name}" is not a tensor of a known type`);
    return { name, dtype: t.dtype, shape: (t.shape ?? []).map((d, axis) => d ?? `${name}[${axis}]`) };
  };
  return {
    inputs: graph.input.filter((i) => !initializers.has(i.name)).map((i) => spec(i.name)),
    outputs: graph.output.map((o) => spec(o.name)),
  };
}

/** Mixed-precision search and reports name nodes: give unnamed main-graph nodes stable names. */
function nameNodes(model: Awaited<ReturnType<typeof loadOnnx>>): void {
  const names = new NameGenerator(model.proto);
  for (const node of mainGraph(model.proto).node) if (node.name === '') node.name = names.node(node.opType);
}

function precisionPlan(requested: CompileOptions['precision'], planned: readonly Precision[]): Precision[] {
  if (requested === undefined || requested === 'auto') return [...new Set([...planned, 'fp32' as const])];
  return [requested === 'mixed' ? 'int8' : requested];
}

function toleranceFor(v: BuiltVariant): { atol: number; rtol: number } {
  // The self-test catches a broken install, not accuracy drift (the compile gate did that): twice the worst error
  // seen on held-out data, plus float32 noise.
  return { atol: v.figures.max_abs_err * 2 + 1e-5, rtol: 1e-3 };
}

/**
 * `outpost compile`: a model and a target in, a signed, self-describing artifact out. Variants per the target's
 * precision plan, each graded against the fp32 original on held-out inputs; nothing outside the budget ships
 * unless asked (and then flagged). Written to a temporary directory and renamed into place when complete.
 */
export async function compile(options: CompileOptions): Promise<CompileReport> {
  const started = performance.now();
  const { profile: target, host } = resolveTarget(options.target);
  await checkWritable(options.output);
  const workDir = await mkdtemp(join(tmpdir(), 'outpost-compile-'));
  const pass: PassContext = { target, host, workDir, report: emptyReport() };
  try {
    let model = await loadOnnx(options.model, { externalData: 'lazy' });
    if (options.inputShapes !== undefined && Object.keys(options.inputShapes).length > 0) {
      model = await fixInputShapes(model, pass, { shapes: options.inputShapes });
    }
    nameNodes(model);
    const original = join(workDir, 'original.onnx');
    await saveModel(model, original);
    const { inputs, outputs } = inputSpecs(model);

    const [firstInput] = inputs;
    const preprocess =
      options.preprocess === undefined || firstInput === undefined
        ? undefined
        : parsePreprocessSpec(options.preprocess, firstInput.name);
    const source = options.calibration ?? 'synthetic';
    const set = await loadSamples(source, { inputs, bindings: {}, preprocess });
    if (set.synthetic) {
      pass.report.warnings.push(
        'calibration and evaluation used synthetic inputs (--calibration synthetic): accuracy figures describe random data, not yours',
      );
    }
    const { calibration, evaluation, overlap } = holdOut(set.samples);
    if (overlap)
      pass.report.warnings.push('only one sample: the accuracy gate evaluated on the calibration sample itself');
    const ref = await reference(original, evaluation);

    const budget = options.budget ?? DEFAULT_BUDGET;
    const ctx: VariantContext = {
      pass,
      model,
      reference: ref,
      budget,
      calibration,
      method: options.calibrationMethod ?? 'minmax',
      quantization: options.quantization ?? 'auto',
      requireQuantized: options.requireQuantized ?? [],
      onProgress: options.onProgress,
    };
    const plan = precisionPlan(options.precision, target.precisions);
    const explicit = options.precision !== undefined && options.precision !== 'auto';
    const built: BuiltVariant[] = [];
    for (const precision of plan) {
      options.onProgress?.(`build ${precision}`, built.length, plan.length);
      built.push(
        precision === 'int8'
          ? await buildInt8(ctx)
          : precision === 'fp16'
            ? await buildFp16(ctx)
            : await buildFp32(ctx),
      );
    }

    // The gate: within budget ships; outside it ships only under --allow-accuracy-loss, flagged.
    const shipped = built.filter((v) => v.misses.length === 0 || options.allowAccuracyLoss === true);
    const rejected = built.filter((v) => !shipped.includes(v));
    if (shipped.length === 0) {
      const why = rejected.map((v) => `${v.id}: ${v.misses.join('; ')}`).join(' | ');
      throw new OutpostError(
        'ACCURACY_BUDGET_MISSED',
        `no variant is within the accuracy budget (${why})${explicit ? '; try --precision auto, a looser --accuracy-budget, or --allow-accuracy-loss' : ''}`,
        { details: { variants: rejected.map((v) => ({ id: v.id, misses: v.misses, accuracy: v.figures })) } },
      );
    }

    // Formats: ONNX Runtime's own format loads 2–3× faster where both backends read it.
    const formats = new Map<string, { path: string; format: 'onnx' | 'ort'; backends: BuiltVariant['backends'] }>();
    for (const v of shipped) {
      let chosen = { path: v.path, format: 'onnx' as 'onnx' | 'ort', backends: v.backends };
      if ((options.ortFormat ?? host) && v.precision !== 'fp16') {
        const sample = evaluation[0];
        const feeds = sample === undefined ? undefined : typed(sample, inputs);
        const ort = await convertToOrtFormat(await loadOnnx(v.path), pass, {
          output: join(workDir, `${v.id}.ort`),
          ...(feeds === undefined ? {} : { feeds }),
        });
        if (ort.backends.includes('native')) chosen = { path: ort.path, format: 'ort', backends: ort.backends };
        else
          pass.report.warnings.push(
            `${v.id}: ORT format did not verify (${ort.checks.map((c) => c.error ?? 'ok').join('; ')}); shipping .onnx`,
          );
      }
      formats.set(v.id, chosen);
    }

    // Selection: measured here for host/--tune; otherwise ranked by the target's plan, chosen by the device.
    const measure = host || options.tune === true;
    const latency = new Map<string, number>();
    if (measure && evaluation[0] !== undefined) {
      for (const v of shipped) latency.set(v.id, await latencyP50(formats.get(v.id)?.path ?? v.path, evaluation[0]));
    }
    const planIndex = (v: BuiltVariant) => plan.indexOf(v.precision === 'mixed' ? 'int8' : v.precision);
    const ranked = [...shipped].sort(
      (a, b) =>
        a.misses.length - b.misses.length ||
        (measure ? (latency.get(a.id) ?? Infinity) - (latency.get(b.id) ?? Infinity) : planIndex(a) - planIndex(b)),
    );

    const variants: ShippedVariant[] = ranked.map((v, i) => {
      const f = formats.get(v.id) ?? { path: v.path, format: 'onnx' as const, backends: v.backends };
      return {
        id: v.id,
        path: f.path,
        format: f.format,
        precision: v.precision,
        backends: f.backends,
        rank: i + 1,
        accuracy: {
          cosine: v.figures.cosine,
          max_abs_err: v.figures.max_abs_err,
          relative_err: v.figures.relative_err,
          ...(v.figures.top1_agreement === undefined ? {} : { top1_agreement: v.figures.top1_agreement }),
        },
        accuracyWaived: v.misses.length > 0,
        tolerance: toleranceFor(v),
      };
    });
    const report: Omit<CompileReport, 'output' | 'seconds'> = {
      target: target.key,
      selected: variants[0]?.id ?? '',
      selection: measure ? 'fixed' : 'device',
      variants: ranked.map((v): VariantReport => ({
        id: v.id,
        precision: v.precision,
        format: formats.get(v.id)?.format ?? 'onnx',
        bytes: 0,
        accuracy: {
          cosine: v.figures.cosine,
          max_abs_err: v.figures.max_abs_err,
          relative_err: v.figures.relative_err,
          ...(v.figures.top1_agreement === undefined ? {} : { top1_agreement: v.figures.top1_agreement }),
        },
        ...(latency.has(v.id) ? { latency_p50_ms: latency.get(v.id) } : {}),
        excluded_nodes: v.excluded,
        within_budget: v.misses.length === 0,
        notes:
          v.misses.length === 0
            ? v.notes
            : [...v.notes, `OUTSIDE BUDGET (shipped under --allow-accuracy-loss): ${v.misses.join('; ')}`],
      })),
      rejected: rejected.map((v) => ({ id: v.id, precision: v.precision, reason: v.misses.join('; ') })),
      calibration: {
        source: set.source,
        samples: calibration.length,
        evaluation_samples: evaluation.length,
        synthetic: set.synthetic,
        method: ctx.method,
      },
      warnings: pass.report.warnings,
    };

    const packed = /\.(tar\.gz|tgz)$/.test(options.output);
    const dir = packed ? join(workDir, 'artifact') : options.output;
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
        ...((set.preprocess ?? preprocess) ? { preprocess: set.preprocess ?? preprocess } : {}),
        postprocess: [...(options.postprocess ?? [])],
      },
      ...(options.labels === undefined ? {} : { labels: (await readBytes(options.labels)).toString('utf8') }),
      vectors: evaluation.slice(0, TEST_VECTORS).map((feeds, i) => ({ feeds, outputs: ref.outputs[i] ?? {} })),
      source: { file: options.model, sha256: (await sha256File(options.model)).sha256 },
      report,
      ...(options.signKey === undefined ? {} : { signingKey: options.signKey }),
      overwrite: options.overwrite ?? false,
    });
    if (packed) await packArtifact(dir, options.output, { overwrite: options.overwrite ?? false });
    const sizes = new Map(written.manifest.variants.map((v) => [v.id, v.bytes]));
    const final: CompileReport = {
      ...report,
      variants: report.variants.map((v) => ({ ...v, bytes: sizes.get(v.id) ?? 0 })),
      output: options.output,
      seconds: (performance.now() - started) / 1000,
    };
    log.info({ target: target.key, selected: final.selected, seconds: final.seconds }, 'compiled');
    return final;
  } finally {
    await rm(workDir, { recursive: true, force: true });
  }
}

/** Feeds with every tensor's dtype spelled out, as the ORT-format check wants them. */
function typed(feeds: Feeds, inputs: readonly TensorSpec[]): Record<string, TensorValue> {
  const out: Record<string, TensorValue> = {};
  for (const spec of inputs) {
    const t = feeds[spec.name];
    if (t !== undefined) out[spec.name] = { type: t.type ?? spec.dtype, dims: t.dims, data: t.data };
  }
  return out;
}

function sanitize(name: string): string {
  return name.replace(/[^A-Za-z0-9._-]/g, '-').replace(/^[^A-Za-z0-9]+/, '') || 'model';
}
