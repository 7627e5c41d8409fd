import { join } from 'node:path';
import { OutpostError } from '../runtime/errors.js';
import type { BackendName, Precision } from '../runtime/artifact/index.js';
import type { Feeds } from '../runtime/model/index.js';
import { collectRangesDetailed } from './calibration/collect.js';
import type { CalibrationMethod } from './calibration/calibrators.js';
import { budgetMisses, type AccuracyBudget, type AccuracyFigures } from './evaluate/budget.js';
import type { Evaluator, Reference } from './evaluate/evaluator.js';
import { mixedPrecision } from './mixed-precision.js';
import {
  cloneModel,
  graphAndSubgraphs,
  loadModel,
  mainGraph,
  nodeSubgraphs,
  saveModel,
  type OnnxModel,
} from './onnx/index.js';
import { convertToFloat16 } from './passes/fp16.js';
import { optimizeModel } from './passes/optimize.js';
import { quantizeDynamic } from './passes/quantize-dynamic.js';
import { quantizeStatic } from './passes/quantize-static.js';
import type { PassContext } from './passes/types.js';
import { MIN_QUANTISED_SHARE, QUANTISED_OPS, quantisedCoverage } from './quantize/coverage.js';

/** A variant built and graded, before it is shipped or rejected. */
export interface BuiltVariant {
  readonly id: string;
  readonly precision: Precision;
  /** The ONNX file in the work directory. */
  readonly path: string;
  readonly backends: BackendName[];
  /** Undefined when nothing could be graded (no input the original accepts; fp32 only, shipped marked so). */
  readonly figures: AccuracyFigures | undefined;
  /** Budget misses in words; empty when within budget. */
  readonly misses: string[];
  readonly excluded: { node: string; op: string; reason: string }[];
  readonly notes: string[];
  /** Why it must not ship whatever its accuracy (an "int8" build that quantised nothing). */
  readonly dropped?: string;
}

export type QuantizationMode = 'auto' | 'static' | 'dynamic';

export interface VariantContext {
  readonly pass: PassContext;
  /** The input model with shapes fixed and every main-graph node named. */
  readonly model: OnnxModel;
  /** The original's outputs on the held-out inputs; undefined when none could be made (nothing is graded). */
  readonly reference: Reference | undefined;
  /** Runs every model the variants are graded, calibrated and measured with, each run bounded. */
  readonly evaluator: Evaluator;
  readonly budget: AccuracyBudget;
  /** The calibration samples are synthetic draws: the ones the model rejects are skipped, not an error. */
  readonly synthetic: boolean;
  readonly calibration: readonly Feeds[];
  readonly method: CalibrationMethod;
  readonly quantization: QuantizationMode;
  /** Passed to static quantisation as `require`: these nodes/op types failing to quantise is an error, not a skip. */
  readonly requireQuantized: readonly string[];
  readonly onProgress?: (stage: string, done: number, total: number) => void;
}

async function save(model: OnnxModel, dir: string, id: string): Promise<string> {
  const path = join(dir, `${id}.onnx`);
  await saveModel(model, path);
  return path;
}

function passReport(): PassContext['report'] {
  return { warnings: [], excludedNodes: [] };
}

/** Grades a variant file against the reference (the evaluator's native backend, each run bounded). */
export function grade(ctx: VariantContext, path: string, id: string, progress = true): Promise<AccuracyFigures> {
  if (ctx.reference === undefined) throw new OutpostError('INTERNAL', `${id}: nothing to grade against`);
  return ctx.evaluator.accuracy(path, ctx.reference, 'native', `grade ${id}`, progress);
}

async function graded(
  ctx: VariantContext,
  fields: Omit<BuiltVariant, 'figures' | 'misses'>,
  figures?: AccuracyFigures,
): Promise<BuiltVariant> {
  if (ctx.reference === undefined) return { ...fields, figures: undefined, misses: [] };
  const f = figures ?? (await grade(ctx, fields.path, fields.id));
  return { ...fields, figures: f, misses: budgetMisses(f, ctx.budget) };
}

/** fp32: the model through ONNX Runtime's offline optimiser at the target's portable level. */
export async function buildFp32(ctx: VariantContext): Promise<BuiltVariant> {
  const result = await optimizeModel(cloneModel(ctx.model), ctx.pass);
  const path = await save(result.model, ctx.pass.workDir, 'fp32');
  return graded(ctx, {
    id: 'fp32',
    precision: 'fp32',
    path,
    backends: result.backends,
    excluded: [],
    notes: [`optimised at "${result.level}" (${result.reason}); ${result.nodes.before} → ${result.nodes.after} nodes`],
  });
}

/** fp16 for GPUs: optimised first (portable level), then converted; graded on this CPU (fp16 storage, fp32 math). */
export async function buildFp16(ctx: VariantContext): Promise<BuiltVariant> {
  const optimized = await optimizeModel(cloneModel(ctx.model), ctx.pass);
  const report = passReport();
  const converted = await convertToFloat16(optimized.model, { ...ctx.pass, report }, undefined);
  ctx.pass.report.warnings.push(...report.warnings);
  const path = await save(converted, ctx.pass.workDir, 'fp16');
  return graded(ctx, {
    id: 'fp16',
    precision: 'fp16',
    path,
    // The device's GPU runs it; a CPU can too (ORT casts around fp16-less kernels), WASM is not promised.
    backends: ['native'],
    excluded: report.excludedNodes,
    notes: ['float16 weights and activations, float32 at the graph edges; accuracy measured on the CPU'],
  });
}

/** Conv-bearing models are calibrated and quantised statically; MatMul/Gemm-only models dynamically. */
function chooseMode(ctx: VariantContext): 'static' | 'dynamic' {
  if (ctx.quantization !== 'auto') return ctx.quantization;
  return mainGraph(ctx.model.proto).node.some((n) => n.opType === 'Conv' || n.opType === 'ConvTranspose')
    ? 'static'
    : 'dynamic';
}

/**
 * int8: quantised (static QDQ with calibrated activations, or dynamic) from the model optimised at the basic level
 * (constant folding, BatchNorm into Conv: ONNX Runtime's quantisation guide recommends quantising an optimised
 * model). When it misses the budget, automatic mixed precision keeps the most sensitive nodes in float.
 */
export async function buildInt8(ctx: VariantContext): Promise<BuiltVariant> {
  const mode = chooseMode(ctx);
  const base = (await optimizeModel(cloneModel(ctx.model), ctx.pass, { level: 'basic' })).model;
  const format = ctx.pass.target.quantization;
  const collected =
    mode === 'static'
      ? await collectRangesDetailed(base, ctx.calibration, {
          method: ctx.method,
          workDir: ctx.pass.workDir,
          evaluator: ctx.evaluator,
          skipFailures: ctx.synthetic,
        })
      : undefined;
  const ranges = collected?.ranges;
  let builds = 0;
  /** Quantises a fresh copy, keeping `exclude` in float; returns the file and what the pass reported. */
  const quantize = async (exclude: ReadonlySet<string>) => {
    const report = passReport();
    const pass = { ...ctx.pass, report };
    const copy = cloneModel(base);
    const quantized =
      ranges === undefined
        ? await quantizeDynamic(copy, pass, { format, exclude })
        : await quantizeStatic(copy, pass, {
            format,
            ranges,
            exclude,
            require: ctx.requireQuantized.filter((r) => !exclude.has(r)),
          });
    const path = await save(quantized, ctx.pass.workDir, `int8-${builds++}`);
    return { path, report };
  };
  const first = await quantize(new Set());
  const notes = [
    mode === 'static'
      ? `static QDQ, ${ctx.method} calibration on ${collected?.observed ?? 0} samples, activations ${format.activations}, weights ${format.weights}${format.reduceRange ? ' (7-bit, reduce range)' : ''}${format.perChannel ? ', per channel' : ''}`
      : `dynamic: weights ${format.weights}${format.perChannel ? ' per channel' : ''}, activations quantised at run time`,
  ];
  ctx.pass.report.warnings.push(...first.report.warnings);
  if ((collected?.failed.length ?? 0) > 0) {
    notes.push(`${collected?.failed.length ?? 0} synthetic calibration draws the model rejected were skipped`);
  }
  const coverage = await notQuantised(base, first.path, first.report.excludedNodes);
  if (coverage !== undefined) {
    return {
      id: 'int8',
      precision: 'int8',
      path: first.path,
      backends: ['native', 'wasm'],
      figures: undefined,
      misses: [],
      excluded: first.report.excludedNodes,
      notes,
      dropped: coverage,
    };
  }
  const plain = await graded(ctx, {
    id: 'int8',
    precision: 'int8',
    path: first.path,
    backends: ['native', 'wasm'],
    excluded: first.report.excludedNodes,
    notes,
  });
  if (plain.misses.length === 0) return plain;

  // Mixed precision: the candidates are the nodes the plain run quantised.
  const skipped = new Set(first.report.excludedNodes.map((e) => e.node));
  const candidates = mainGraph(base.proto)
    .node.filter((n) => QUANTISED_OPS.has(n.opType) && !skipped.has(n.name))
    .map((n) => n.name);
  const result = await mixedPrecision(
    {
      candidates,
      build: async (quantized) => (await quantize(new Set(candidates.filter((c) => !quantized.has(c))))).path,
      evaluate: (path) => grade(ctx, path, 'mixed', false),
      quantizedWeights,
      onProgress: (done, total) => ctx.onProgress?.('mixed precision', done, total),
    },
    ctx.budget,
  );
  if (result === undefined) return plain;
  const ops = new Map(mainGraph(base.proto).node.map((n) => [n.name, n.opType]));
  const mixedCoverage = await notQuantised(base, result.path, []);
  const mixed = await graded(
    ctx,
    {
      id: 'mixed',
      precision: 'mixed',
      path: result.path,
      backends: ['native', 'wasm'],
      excluded: [
        ...first.report.excludedNodes,
        ...result.keptFloat.map((s) => ({
          node: s.node,
          op: ops.get(s.node) ?? '?',
          reason: `kept in float for accuracy: quantised alone it costs ${s.sensitivity.toExponential(2)} cosine`,
        })),
      ],
      notes: [
        ...notes,
        `mixed precision: ${result.keptFloat.length} of ${candidates.length} quantisable nodes kept in float (int8 alone: cosine ${plain.figures?.cosine.toFixed(5) ?? '?'})`,
      ],
    },
    result.figures,
  );
  return mixedCoverage === undefined ? mixed : { ...mixed, dropped: mixedCoverage };
}

/**
 * Why a build is not an int8 variant (it stores under MIN_QUANTISED_SHARE of its weights in 8 bits), naming the
 * candidates and why each was skipped; undefined when it is one.
 */
async function notQuantised(
  base: OnnxModel,
  path: string,
  skipped: readonly { node: string; op: string; reason: string }[],
): Promise<string | undefined> {
  const coverage = await quantisedCoverage(base, path);
  if (coverage.share >= MIN_QUANTISED_SHARE) return undefined;
  const main = mainGraph(base.proto);
  const ops = new Map<string, number>();
  for (const n of main.node) ops.set(n.opType, (ops.get(n.opType) ?? 0) + 1);
  const found = [...ops]
    .sort((a, b) => b[1] - a[1])
    .slice(0, 6)
    .map(([op, n]) => `${op} ×${n}`)
    .join(', ');
  let nested = 0;
  for (const holder of main.node)
    for (const sub of nodeSubgraphs(holder))
      for (const g of graphAndSubgraphs(sub)) nested += g.node.filter((n) => QUANTISED_OPS.has(n.opType)).length;
  const list = (entries: readonly { node: string; op: string; reason: string }[]) =>
    `${entries
      .slice(0, 8)
      .map((e) => `${e.node} (${e.op}): ${e.reason}`)
      .join('; ')}${entries.length > 8 ? `; … ${entries.length - 8} more` : ''}`;
  const why =
    coverage.candidates === 0
      ? `no ${[...QUANTISED_OPS].join('/')} node of the main graph has a constant float weight (it holds ${found})${nested > 0 ? `; ${nested} such nodes sit inside If/Loop/Scan subgraphs, which are not quantised` : ''}`
      : skipped.length > 0
        ? `${coverage.candidates} candidate nodes, skipped: ${list(skipped)}`
        : `${coverage.candidates} candidate nodes, but the build kept their weights in float`;
  return `quantised ${(coverage.share * 100).toFixed(1)}% of the weights (${coverage.int8Weights} of ${coverage.floatWeights}), under ${MIN_QUANTISED_SHARE * 100}%: not an int8 model; ${why}`;
}

/**
 * Integer weight tensors in a saved model: int8/uint8 initializers with more than one element (activation zero
 * points are scalars; weights, and per-channel weight zero points, are not).
 */
async function quantizedWeights(path: string): Promise<number> {
  const graph = mainGraph((await loadModel(path)).proto);
  const isInt8 = (t: (typeof graph.initializer)[number]) => t.dataType === 2 || t.dataType === 3;
  return graph.initializer.filter((t) => isInt8(t) && t.dims.reduce((a, d) => a * Number(d), 1) > 1).length;
}
