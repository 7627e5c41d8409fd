import { copyFile, stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import {
  NativeBackend,
  WasmBackend,
  type Backend,
  type BackendName,
  type BackendSession,
  type TensorValue,
} from '../../runtime/backends/index.js';
import { OutpostError, fromFsError, messageOf } from '../../runtime/errors.js';
import { concreteShape } from '../../runtime/model/index.js';
import { allClose, elementCount, syntheticData } from '../../runtime/tensor/index.js';
import { mainGraph, type OnnxModel } from '../onnx/index.js';
import { fallbackLevels, optimizationLevelFor } from './optimize.js';
import { usesFloat16, writeThroughOrt, type OptimizationLevel } from './ort-offline.js';
import type { PassContext } from './types.js';

/**
 * ONNX Runtime's own format (`.ort`, a FlatBuffer): ORT saves the graph it optimised, and loading skips protobuf
 * parsing and the optimisers (ORT docs, "ORT format models"). A terminal step, not a model → model pass: it returns
 * the file and the backends that load it and compute what the `.onnx` computes, which is a variant's `backends`.
 * The level follows the optimise pass (portable unless `--target host`) and steps down when a level fails.
 *
 * What an `.ort` computes is the graph as optimised at the level it was saved at, and nothing more: a session
 * loading it runs no graph optimiser again, whatever level it asks for (measured with onnxruntime-node 1.30: an
 * `.ort` saved at `basic` and loaded at `all` gives the `basic` answers bit for bit). Two consequences:
 *
 * - The default check compares the `.ort` with the `.onnx` run at the *same* level. Run at another level the
 *   `.onnx` is another computation: fusions reorder float sums, and in a quantised network one requantisation
 *   landing on the other side of a rounding step is amplified downstream (PaddleOCR det int8: `.onnx` at `all`
 *   against `.onnx` at `extended`, max |Δ| 0.94 on the probability map at cosine 0.9993). Callers that hold a
 *   reference (the compile) pass `judge` instead and grade the `.ort` against it with the accuracy budget.
 * - A QDQ model is never saved below `extended`: at `basic` ORT leaves DequantizeLinear → Conv → QuantizeLinear
 *   unfused (the QDQ fusions into QLinearConv and friends are level-2 transformers), so the `.ort` would compute in
 *   float — no longer an int8 model, and not what its `.onnx` computes on a device (which fuses at load).
 */
export interface OrtFormatOptions {
  /** Overrides the level chosen for the target. */
  readonly level?: OptimizationLevel;
  /** The file must load in onnxruntime-web. Default: the target's `wasmFallback`. */
  readonly wasm?: boolean;
  /** Copy the result here (default: it stays in the work directory). */
  readonly output?: string;
  /** Inputs for the equivalence check; default: synthetic data of the input shapes. */
  readonly feeds?: Readonly<
    Record<
      string,
      { readonly type: TensorValue['type']; readonly data: TensorValue['data']; readonly dims: readonly number[] }
    >
  >;
  /** Sizes for symbolic input dimensions in synthetic feeds (batch-like ones default to 1). */
  readonly bindings?: Readonly<Record<string, number>>;
  readonly atol?: number; // default 1e-4
  readonly rtol?: number; // default 1e-3
  /**
   * Decides whether the written `.ort` is good on a backend (the compile grades it against the fp32 original with
   * the accuracy budget). Default: it reproduces the `.onnx` run at the same level within atol/rtol.
   */
  readonly judge?: (
    ortPath: string,
    backend: BackendName,
  ) => Promise<{ readonly ok: boolean; readonly error?: string }>;
  /** Session creations timed per format and backend; the median is reported. */
  readonly loadRepeats?: number; // default 3
}

export interface BackendCheck {
  readonly backend: BackendName;
  /** Loads the .ort and matches the .onnx's outputs within tolerance. */
  readonly ok: boolean;
  readonly maxAbsErr?: number;
  readonly error?: string;
  /** Median session creation, ms, of the .onnx and of the .ort on this backend. */
  readonly loadMs?: { readonly onnx: number; readonly ort: number };
}

/** ORT's levels that keep QDQ fused (see the module comment). */
const QDQ_LEVELS: ReadonlySet<OptimizationLevel> = new Set(['extended', 'layout', 'all']);

/** Whether the main graph holds QuantizeLinear/DequantizeLinear (a quantised QDQ model). */
export function hasQdq(model: OnnxModel): boolean {
  return mainGraph(model.proto).node.some((n) => n.opType === 'QuantizeLinear' || n.opType === 'DequantizeLinear');
}

export interface OrtFormatResult {
  readonly path: string;
  readonly bytes: number;
  readonly level: OptimizationLevel;
  /** Backends that load the file and reproduce the .onnx outputs. */
  readonly backends: BackendName[];
  readonly checks: BackendCheck[];
  /** Levels tried before this one, with why each was left. */
  readonly stepped: readonly { readonly level: OptimizationLevel; readonly why: string }[];
}

const DEFAULTS = Object.freeze({ atol: 1e-4, rtol: 1e-3, loadRepeats: 3 });

type Feeds = Record<string, TensorValue>;

async function timedSession(
  backend: Backend,
  path: string,
  repeats: number,
): Promise<{ session: BackendSession; ms: number }> {
  const times: number[] = [];
  let session: BackendSession | undefined;
  for (let i = 0; i < repeats; i++) {
    await session?.release();
    const started = performance.now();
    session = await backend.createSession(path, {});
    times.push(performance.now() - started);
  }
  if (session === undefined) throw new OutpostError('INTERNAL', 'loadRepeats must be at least 1');
  times.sort((a, b) => a - b);
  return { session, ms: times[Math.floor(times.length / 2)] ?? 0 };
}

function syntheticFeeds(session: BackendSession, bindings: Readonly<Record<string, number>>): Feeds {
  const feeds: Feeds = {};
  session.inputs.forEach((input, i) => {
    if (input.dtype === undefined) {
      throw new OutpostError(
        'MODEL_UNSUPPORTED',
        `input "${input.name}" is not a tensor; pass feeds to check the .ort`,
      );
    }
    const dims = concreteShape({ name: input.name, dtype: input.dtype, shape: [...input.shape] }, bindings);
    feeds[input.name] = session.tensor(input.dtype, syntheticData(input.dtype, elementCount(dims), i + 1), dims);
  });
  return feeds;
}

function rebind(session: BackendSession, feeds: Feeds): Feeds {
  return Object.fromEntries(Object.entries(feeds).map(([k, t]) => [k, session.tensor(t.type, t.data, t.dims)]));
}

async function check(
  backend: Backend,
  onnxPath: string,
  ortPath: string,
  reference: { feeds: Feeds; outputs: Record<string, TensorValue> },
  options: { atol: number; rtol: number; loadRepeats: number },
): Promise<BackendCheck> {
  try {
    await backend.init();
    const onnx = await timedSession(backend, onnxPath, options.loadRepeats);
    await onnx.session.release();
    const ort = await timedSession(backend, ortPath, options.loadRepeats);
    const loadMs = { onnx: onnx.ms, ort: ort.ms };
    try {
      const outputs = await ort.session.run(rebind(ort.session, reference.feeds));
      let maxAbsErr = 0;
      for (const [name, expected] of Object.entries(reference.outputs)) {
        const actual = outputs[name];
        if (actual === undefined) return { backend: backend.name, ok: false, error: `no output "${name}"`, loadMs };
        const exact = expected.type !== 'float32' && expected.type !== 'float64' && expected.type !== 'float16';
        const cmp = allClose(
          actual.data,
          expected.data,
          exact ? 0 : options.atol,
          exact ? 0 : options.rtol,
          expected.type,
        );
        maxAbsErr = Math.max(maxAbsErr, cmp.maxAbsErr);
        if (!cmp.ok) {
          const error = `output "${name}"[${cmp.index}] = ${cmp.actual}, the .onnx gives ${cmp.expected}`;
          return { backend: backend.name, ok: false, maxAbsErr, error, loadMs };
        }
      }
      return { backend: backend.name, ok: true, maxAbsErr, loadMs };
    } finally {
      await ort.session.release();
    }
  } catch (error) {
    return { backend: backend.name, ok: false, error: messageOf(error) };
  }
}

function sessionLevel(level: OptimizationLevel): 'disabled' | 'basic' | 'extended' | 'all' {
  return level === 'layout' ? 'all' : level;
}

/** Writes the model in ORT format and checks it on both backends (see the module comment). */
export async function convertToOrtFormat(
  model: OnnxModel,
  context: PassContext,
  options: OrtFormatOptions = {},
): Promise<OrtFormatResult> {
  const { target } = context;
  if (usesFloat16(model) && (!context.host || target.accelerator !== undefined)) {
    throw new OutpostError(
      'MODEL_UNSUPPORTED',
      `${model.source} computes in float16: saving it through this host's CPU EP would bake in Casts for this CPU's missing fp16 kernels; ship the fp16 variant for ${target.key} as .onnx`,
      { details: { model: model.source, target: target.key } },
    );
  }
  const settings = { ...DEFAULTS, ...options };
  const wasm = options.wasm ?? target.wasmFallback;
  const chosen = options.level ?? optimizationLevelFor(context).level;
  const qdq = hasQdq(model);
  const all = wasm ? fallbackLevels(chosen) : [chosen];
  const levels = qdq ? all.filter((l) => QDQ_LEVELS.has(l)) : all;
  if (levels.length === 0) {
    throw new OutpostError(
      'MODEL_UNSUPPORTED',
      `${model.source} is a QDQ model: saved at "${chosen}" its .ort would not fuse QDQ and would compute in float; use level "extended" or above`,
      { details: { model: model.source, level: chosen } },
    );
  }
  const native = new NativeBackend();
  await native.init();
  const stepped: { level: OptimizationLevel; why: string }[] = [];
  let nativeOnly: OrtFormatResult | undefined;
  for (const level of levels) {
    const written = await writeThroughOrt(model, context.workDir, {
      level,
      format: 'ort',
      qdqInt8Allowed: context.host ? undefined : target.arch === 'arm64',
      stem: `ort-format-${level}`,
    });
    const checks =
      options.judge === undefined
        ? await defaultChecks(native, written, level, options, settings)
        : await judged(options.judge, written.path);
    const [nativeCheck, wasmCheck] = checks as [BackendCheck, BackendCheck];
    if (!nativeCheck.ok) {
      stepped.push({ level, why: `onnxruntime-node: ${nativeCheck.error ?? 'mismatch'}` });
      continue;
    }
    const result = async (): Promise<OrtFormatResult> => {
      let path = written.path;
      if (options.output !== undefined) {
        path = resolve(options.output);
        await copyFile(written.path, path).catch((error: unknown) => {
          throw fromFsError(error, path, 'write');
        });
      }
      return {
        path,
        bytes: (await stat(path)).size,
        level,
        backends: checks.filter((c) => c.ok).map((c) => c.backend),
        checks,
        stepped: [...stepped],
      };
    };
    if (!wasm || wasmCheck.ok) return result();
    context.report.warnings.push(
      `ort-format: the "${level}" .ort fails on onnxruntime-web (${(wasmCheck.error ?? '').slice(0, 200)})${level === levels[levels.length - 1] ? '' : '; trying a lower level'}`,
    );
    stepped.push({ level, why: `onnxruntime-web: ${wasmCheck.error ?? 'mismatch'}` });
    nativeOnly ??= await result();
  }
  if (nativeOnly !== undefined) {
    context.report.warnings.push(`ort-format: the .ort runs on native only (${nativeOnly.level})`);
    return { ...nativeOnly, stepped };
  }
  throw new OutpostError(
    'MODEL_UNSUPPORTED',
    `the ORT-format model of ${model.source} fails on onnxruntime-node at every level tried: ${stepped.map((s) => `${s.level}: ${s.why}`).join('; ')}`,
    { details: { model: model.source, stepped } },
  );
}

async function judged(judge: NonNullable<OrtFormatOptions['judge']>, path: string): Promise<BackendCheck[]> {
  const checks: BackendCheck[] = [];
  for (const backend of ['native', 'wasm'] as const) {
    try {
      const verdict = await judge(path, backend);
      checks.push({ backend, ok: verdict.ok, ...(verdict.error === undefined ? {} : { error: verdict.error }) });
    } catch (error) {
      checks.push({ backend, ok: false, error: messageOf(error) });
    }
  }
  return checks;
}

/** The .ort against the .onnx run at the level the .ort was saved at, on each backend. */
async function defaultChecks(
  native: NativeBackend,
  written: { path: string; inputPath: string },
  level: OptimizationLevel,
  options: OrtFormatOptions,
  settings: { atol: number; rtol: number; loadRepeats: number; bindings?: Readonly<Record<string, number>> },
): Promise<BackendCheck[]> {
  const probe = await native.createSession(written.inputPath, { graphOptimizationLevel: sessionLevel(level) });
  let reference: { feeds: Feeds; outputs: Record<string, TensorValue> };
  try {
    const feeds =
      options.feeds === undefined ? syntheticFeeds(probe, settings.bindings ?? {}) : rebind(probe, options.feeds);
    reference = { feeds, outputs: await probe.run(feeds) };
  } finally {
    await probe.release();
  }
  return [
    await check(native, written.inputPath, written.path, reference, settings),
    await check(new WasmBackend({ threads: 1 }), written.inputPath, written.path, reference, settings),
  ];
}
