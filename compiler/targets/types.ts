import type { Precision } from '../../runtime/artifact/index.js';

/**
 * Integer formats for static (QDQ) quantisation, per ONNX Runtime's quantisation guide ("Data type selection"):
 * x86-64 without VNNI computes U8S8 with VPMADDUBSW, which can saturate, so weights use 7 bits (reduce range);
 * x86-64 with VNNI and ARM64 have no such issue.
 */
export interface QuantizationFormat {
  /** Activation type in QuantizeLinear/DequantizeLinear pairs. */
  readonly activations: 'uint8' | 'int8';
  readonly weights: 'int8' | 'uint8';
  /** Quantise weights to 7 bits ([-64, 64], as ONNX Runtime does) to avoid U8S8 saturation on non-VNNI x86. */
  readonly reduceRange: boolean;
  /** Per-output-channel weight scales for Conv/MatMul/Gemm. */
  readonly perChannel: boolean;
}

export type Arch = 'x86_64' | 'arm64';

export interface TargetProfile {
  /** `arch:cpu`, e.g. "x86_64:avx512-vnni", "arm64:cortex-a72", "cuda:sm_87". */
  readonly key: string;
  readonly arch: Arch;
  /** CPU (or for CUDA, the compute capability) the profile is tuned for. */
  readonly cpu: string;
  readonly accelerator?: 'cuda';
  readonly description: string;
  /** CPU/GPU features the profile may use (avx2, avx512f, vnni, neon, dotprod, fp16, tensor cores …). */
  readonly features: readonly string[];
  /** Precisions to produce, in preference order; the accuracy gate and selection pick among them. */
  readonly precisions: readonly Precision[];
  /** ONNX Runtime execution providers in preference order. */
  readonly executionProviders: readonly string[];
  readonly quantization: QuantizationFormat;
  /** The device's WASM fallback must be able to run what this target ships. */
  readonly wasmFallback: boolean;
}
