import { copyFile, stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { NativeBackend } from '../../runtime/backends/native.js';
import { WasmBackend } from '../../runtime/backends/wasm.js';
import type { Backend, BackendName, BackendSession, TensorValue } from '../../runtime/backends/types.js';
import { OutpostError, fromFsError, messageOf } from '../../runtime/errors.js';
import { concreteShape } from '../../runtime/model/validate.js';
import { allClose, elementCount, syntheticData } from '../../runtime/tensor/tensor.js';
import type { OnnxModel } from '../onnx/index.js';
import { fallbackLevels, optimizationLevelFor } from './optimize.js';
import { usesFloat16, writeThroughOrt, type OptimizationLevel } from './ort-offline.js';
import type { PassContext } from './types.js';

/**
 * ONNX Runtime's own format (`.ort`, a FlatBuffer): ORT saves the graph it optimised, and loading skips protobuf
 * parsing and the optimisers (ORT docs, "ORT format models"). A terminal step, not a model → model pass: it returns
 * the file and the backends that load it and reproduce the `.onnx`'s outputs, which is a variant's `backends` list.
 * The level follows the optimise pass (portable unless `--target host`) and steps down when WASM must run it.
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

export interface OrtFormatResult {
  readonly path: string;
  readonly bytes: number;
  readonly level: OptimizationLevel;
  /** Backends that load the file and reproduce the .onnx outputs. */
  readonly backends: BackendName[];
  readonly checks: BackendCheck[];
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
        const cmp = allClose(actual.data, expected.data, exact ? 0 : options.atol, exact ? 0 : options.rtol);
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

/** Writes the model in ORT format and checks it on both backends against the .onnx (see the module comment). */
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
  const levels = wasm ? fallbackLevels(chosen) : [chosen];
  const native = new NativeBackend();
  await native.init();
  for (const level of levels) {
    const written = await writeThroughOrt(model, context.workDir, {
      level,
      format: 'ort',
      qdqInt8Allowed: context.host ? undefined : target.arch === 'arm64',
      stem: `ort-format-${level}`,
    });
    // Reference: the .onnx as a device would run it (native, ORT's default online optimisation).
    const probe = await native.createSession(written.inputPath, {});
    let reference: { feeds: Feeds; outputs: Record<string, TensorValue> };
    try {
      const feeds =
        options.feeds === undefined ? syntheticFeeds(probe, settings.bindings ?? {}) : rebind(probe, options.feeds);
      reference = { feeds, outputs: await probe.run(feeds) };
    } finally {
      await probe.release();
    }
    const checks = [
      await check(native, written.inputPath, written.path, reference, settings),
      await check(new WasmBackend({ threads: 1 }), written.inputPath, written.path, reference, settings),
    ];
    const [nativeCheck, wasmCheck] = checks as [BackendCheck, BackendCheck];
    if (!nativeCheck.ok) {
      throw new OutpostError(
        'MODEL_UNSUPPORTED',
        `the ORT-format model of ${model.source} (level ${level}) fails on onnxruntime-node: ${nativeCheck.error ?? 'mismatch'}`,
        { details: { model: model.source, level, check: nativeCheck } },
      );
    }
    const last = level === levels[levels.length - 1];
    if (wasm && !wasmCheck.ok && !last) {
      context.report.warnings.push(
        `ort-format: the "${level}" .ort fails on onnxruntime-web (${(wasmCheck.error ?? '').slice(0, 200)}); trying a lower level`,
      );
      continue;
    }
    if (wasm && !wasmCheck.ok)
      context.report.warnings.push(`ort-format: the .ort runs on native only (${wasmCheck.error ?? ''})`);
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
    };
  }
  throw new OutpostError('INTERNAL', `ort-format: no level was tried for ${model.source}`);
}
