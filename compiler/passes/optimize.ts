import { WasmBackend, type BackendName } from '../../runtime/backends/index.js';
import { OutpostError, messageOf } from '../../runtime/errors.js';
import { mainGraph, type OnnxModel } from '../onnx/index.js';
import {
  assertSameInterface,
  loadOrtOutput,
  usesFloat16,
  writeThroughOrt,
  type OptimizationLevel,
} from './ort-offline.js';
import type { Pass, PassContext } from './types.js';

/**
 * Offline graph optimisation by ONNX Runtime itself (graph-optimizations.md, "Online/offline mode"): the device then
 * loads a graph that is already folded and fused. The level is the portability question:
 *
 * - basic: "semantics-preserving graph rewrites … run before graph partitioning and thus apply to all the execution
 *   providers" (graph-optimizations.md); ORT's source says of them "only use official ONNX operators". The only level
 *   whose output any execution provider, TensorRT included, can take: the CUDA targets' level.
 * - extended: fusions into com.microsoft ops (FusedConv, FusedGemm, QuickGelu, LayerNormalization at any opset …)
 *   applied to nodes assigned to the CPU EP. They run on every CPU build of ORT (MLAS picks AVX2/AVX-512/NEON
 *   kernels at run time), so this is the CPU targets' level when cross-compiling. One decision in it depends on the
 *   build's architecture: int8 QDQ is kept as int8 only on ARM builds (QDQIsInt8Allowed(), x86 converts S8 to U8), so
 *   the target's answer is passed as session.qdqisint8allowed.
 * - layout / all: NCHWc blocking sized for this CPU's vector width (MlasNchwcGetBlockSize) and NHWC rewrites; ORT
 *   warns such a model "may contain hardware specific optimizations, and should only be used in the same environment
 *   the model was optimized in" (inference_session.cc). Only for `--target host`.
 *
 * onnxruntime-web lacks the com.microsoft.nchwc ops (measured: "com.microsoft.nchwc:Conv(1) is not a registered
 * function/op"), so when the target needs the WASM fallback the result is loaded there, and on failure the pass
 * steps down a level (all → extended → basic) and says so in the report.
 */
export interface OptimizeOptions {
  /** Overrides the level chosen for the target. */
  readonly level?: OptimizationLevel;
  /** The result must load in onnxruntime-web. Default: the target's `wasmFallback`. */
  readonly wasm?: boolean;
}

export interface OptimizeResult {
  readonly model: OnnxModel;
  /** The level the result was optimised at. */
  readonly level: OptimizationLevel;
  /** The level chosen first (the result's is lower when WASM could not load that one). */
  readonly requested: OptimizationLevel;
  readonly reason: string;
  /** Backends that can run the result. */
  readonly backends: BackendName[];
  readonly nodes: { readonly before: number; readonly after: number };
  /** ORT session creation (optimise + write) at the level used. */
  readonly ms: number;
}

/** The level for a target (see the module comment), with the reason in words. */
export function optimizationLevelFor(context: PassContext): { level: OptimizationLevel; reason: string } {
  if (context.target.accelerator !== undefined) {
    return {
      level: 'basic',
      reason: `${context.target.key}: only standard ONNX ops, so TensorRT and the CUDA EP can take every node`,
    };
  }
  if (context.host) {
    return { level: 'all', reason: 'compiling on the target itself: layout optimisations for this CPU are allowed' };
  }
  return {
    level: 'extended',
    reason: `cross-compiling for ${context.target.key}: CPU-EP fusions run on any CPU; layout (NCHWc) ones are hardware-specific`,
  };
}

async function loadsInWasm(path: string): Promise<string | undefined> {
  const wasm = new WasmBackend({ threads: 1 });
  try {
    await wasm.init();
    const session = await wasm.createSession(path, { graphOptimizationLevel: 'disabled' });
    await session.release();
    return undefined;
  } catch (error) {
    return messageOf(error);
  }
}

/** The level and the ones to step down to for WASM: layout levels → extended → basic (below basic nothing changes). */
export function fallbackLevels(level: OptimizationLevel): OptimizationLevel[] {
  if (level === 'disabled' || level === 'basic') return [level];
  return level === 'extended' ? ['extended', 'basic'] : [level, 'extended', 'basic'];
}

/** The optimise pass with everything it found out (the level used, the backends that can run the result). */
export async function optimizeModel(
  model: OnnxModel,
  context: PassContext,
  options: OptimizeOptions = {},
): Promise<OptimizeResult> {
  const { target } = context;
  if (usesFloat16(model) && (!context.host || target.accelerator !== undefined)) {
    throw new OutpostError(
      'MODEL_UNSUPPORTED',
      `${model.source} computes in float16: ONNX Runtime's CPU EP rewrites such graphs for its own kernels at every level (Casts around nodes it has no fp16 kernel for), which would ship this CPU's kernel coverage to ${target.key}; optimise before converting to fp16`,
      { details: { model: model.source, target: target.key } },
    );
  }
  const chosen =
    options.level === undefined ? optimizationLevelFor(context) : { level: options.level, reason: 'requested' };
  const wasm = options.wasm ?? target.wasmFallback;
  const qdqInt8Allowed = context.host ? undefined : target.arch === 'arm64';
  const before = mainGraph(model.proto).node.length;
  const levels = wasm ? fallbackLevels(chosen.level) : [chosen.level];
  for (const level of levels) {
    const written = await writeThroughOrt(model, context.workDir, {
      level,
      format: 'onnx',
      qdqInt8Allowed,
      stem: `optimize-${level}`,
    });
    // Checked even when WASM is not required, so `backends` says what can run the result.
    const failure = await loadsInWasm(written.path);
    const last = level === levels[levels.length - 1];
    if (failure !== undefined && !last) {
      context.report.warnings.push(
        `optimize: the "${level}" graph does not load in onnxruntime-web (${failure.slice(0, 200)}); trying a lower level for the WASM fallback`,
      );
      continue;
    }
    const optimized = await loadOrtOutput(written.path, model);
    assertSameInterface(model, optimized, `optimize (level ${level})`);
    const backends: BackendName[] = failure === undefined ? ['native', 'wasm'] : ['native'];
    if (failure !== undefined && wasm) {
      context.report.warnings.push(
        `optimize: the model does not load in onnxruntime-web at any level; native only (${failure.slice(0, 200)})`,
      );
    }
    return {
      model: optimized,
      level,
      requested: chosen.level,
      reason: chosen.reason,
      backends,
      nodes: { before, after: mainGraph(optimized.proto).node.length },
      ms: written.ms,
    };
  }
  throw new OutpostError('INTERNAL', `optimize: no level was tried for ${model.source}`);
}

/** `(model, context) → model` optimised for the target (see `optimizeModel` for the details it reports). */
export const optimize: Pass<OptimizeOptions | undefined> = async (model, context, options) =>
  (await optimizeModel(model, context, options)).model;
