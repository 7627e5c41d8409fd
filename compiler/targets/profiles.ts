import { HOST_DEFAULT_PROFILES } from '../../runtime/host/index.js';
import type { Arch, QuantizationFormat, TargetProfile } from './types.js';

/**
 * The target table: every device class Outpost compiles for, as one frozen table (STYLE.md, "Frozen tables for
 * choices"). `--target arch[:cpu]` names a row; errors list the keys. Features are the ones Linux reports in
 * /proc/cpuinfo (x86 `flags`, arm64 `Features`) for the CPU rows, and architecture facts for the CUDA rows.
 */

/**
 * Integer formats, per ONNX Runtime's quantisation guide ("Data type selection"; "When and why do I need to try
 * U8U8?"): on x86-64 without VNNI, MLAS computes U8S8 with VPMADDUBSW, whose 16-bit intermediate sums can saturate,
 * so weights are quantised to 7 bits (reduce range); VNNI (VPDPBUSD) accumulates in 32 bits and needs no such care.
 * ARM64 (SDOT/UDOT or widening NEON) has no saturation issue and runs S8S8 QDQ, the guide's default.
 */
const U8S8_REDUCED: QuantizationFormat = Object.freeze({
  activations: 'uint8',
  weights: 'int8',
  reduceRange: true,
  perChannel: true,
});
const U8S8: QuantizationFormat = Object.freeze({
  activations: 'uint8',
  weights: 'int8',
  reduceRange: false,
  perChannel: true,
});
/** Also what TensorRT consumes: symmetric int8 QDQ (its int8 path has no uint8 activations). */
const S8S8: QuantizationFormat = Object.freeze({
  activations: 'int8',
  weights: 'int8',
  reduceRange: false,
  perChannel: true,
});

/** CPUs: int8 first (the accuracy gate may reject it), fp32 always; native first, WASM as the device's fallback. */
const CPU_PLAN = Object.freeze({
  precisions: Object.freeze(['int8', 'fp32'] as const),
  executionProviders: Object.freeze(['cpu']),
  wasmFallback: true,
});
/**
 * CUDA: fp16 first, fp32 always. TensorRT first (ONNX Runtime's TensorRT EP builds an engine on the device), then
 * the CUDA EP, then CPU for any node neither takes. A CUDA variant is not built for onnxruntime-web, hence no WASM.
 */
const CUDA_PLAN = Object.freeze({
  precisions: Object.freeze(['fp16', 'fp32'] as const),
  executionProviders: Object.freeze(['tensorrt', 'cuda', 'cpu']),
  wasmFallback: false,
});

/** arm64 baseline (ARMv8.0-A): NEON ("asimd") and crc32 on every core below; the `Features` line Linux prints. */
const ARMV8_0 = ['fp', 'asimd', 'crc32'] as const;
/** ARMv8.2-A half-precision arithmetic: scalar ("fphp") and NEON ("asimdhp"). */
const FP16_ARITH = ['fphp', 'asimdhp'] as const;

function profile(p: Omit<TargetProfile, 'key'> & { readonly key?: string }): TargetProfile {
  const key = p.key ?? `${p.arch}:${p.cpu}`;
  return Object.freeze({ key, ...p, features: Object.freeze([...p.features]) });
}

function cpu(
  arch: Arch,
  name: string,
  description: string,
  features: readonly string[],
  quantization: QuantizationFormat,
): TargetProfile {
  return profile({ arch, cpu: name, description, features, quantization, ...CPU_PLAN });
}

function cuda(sm: string, arch: Arch, description: string, features: readonly string[]): TargetProfile {
  return profile({
    key: `cuda:${sm}`,
    arch,
    cpu: sm,
    accelerator: 'cuda',
    description,
    features,
    quantization: S8S8,
    ...CUDA_PLAN,
  });
}

const X86_AVX2 = ['sse4_2', 'avx', 'avx2', 'fma', 'f16c'] as const;
const X86_AVX512 = [...X86_AVX2, 'avx512f', 'avx512bw', 'avx512dq', 'avx512vl'] as const;
/** Ampere and later: fp16/bf16/tf32 tensor cores and int8 dot products. */
const AMPERE = ['fp16', 'bf16', 'tf32', 'dp4a', 'tensor-cores'] as const;

const TABLE: readonly TargetProfile[] = [
  cpu('x86_64', 'avx2', 'x86-64 with AVX2 and FMA (Intel Haswell+, AMD Zen+)', X86_AVX2, U8S8_REDUCED),
  cpu(
    'x86_64',
    'avx-vnni',
    'x86-64 with AVX2 and AVX-VNNI, no AVX-512 (Intel Alder Lake+ client)',
    [...X86_AVX2, 'avx_vnni'],
    U8S8,
  ),
  cpu('x86_64', 'avx512', 'x86-64 with AVX-512 but no VNNI (Intel Skylake-SP/X)', X86_AVX512, U8S8_REDUCED),
  cpu(
    'x86_64',
    'avx512-vnni',
    'x86-64 with AVX-512 VNNI (Intel Cascade Lake+, AMD Zen 4+)',
    [...X86_AVX512, 'avx512_vnni'],
    U8S8,
  ),
  cpu(
    'arm64',
    'cortex-a53',
    'Raspberry Pi 3 / Zero 2 W (ARMv8.0-A, no dot product, no fp16 arithmetic)',
    ARMV8_0,
    S8S8,
  ),
  cpu('arm64', 'cortex-a57', 'Jetson Nano / TX1 CPU (ARMv8.0-A)', [...ARMV8_0, 'aes', 'pmull', 'sha1', 'sha2'], S8S8),
  cpu('arm64', 'cortex-a72', 'Raspberry Pi 4 / CM4 / Pi 400 (ARMv8.0-A)', ARMV8_0, S8S8),
  cpu(
    'arm64',
    'cortex-a76',
    'Raspberry Pi 5 / CM5 (ARMv8.2-A: dot product, fp16 arithmetic)',
    [...ARMV8_0, 'aes', 'pmull', 'sha1', 'sha2', 'atomics', ...FP16_ARITH, 'asimdrdm', 'asimddp'],
    S8S8,
  ),
  // Carmel's /proc/cpuinfo (Jetson AGX Xavier, L4T 35, hrw/arm-socs-table#63) lists fphp/asimdhp but not asimddp:
  // fp16 arithmetic yes, dot product no.
  cpu(
    'arm64',
    'carmel',
    'Jetson Xavier NX / AGX CPU (NVIDIA Carmel, ARMv8.2-A: fp16 arithmetic, no dot product)',
    [...ARMV8_0, 'aes', 'pmull', 'sha1', 'sha2', 'atomics', ...FP16_ARITH, 'asimdrdm'],
    S8S8,
  ),
  cpu(
    'arm64',
    'cortex-a78ae',
    'Jetson Orin CPU (ARMv8.2-A+: dot product, fp16 arithmetic)',
    [...ARMV8_0, 'aes', 'pmull', 'sha1', 'sha2', 'atomics', ...FP16_ARITH, 'asimdrdm', 'asimddp'],
    S8S8,
  ),
  cuda('sm_53', 'arm64', 'Jetson Nano / TX1 GPU (Maxwell, native fp16, no tensor cores)', ['fp16']),
  cuda('sm_72', 'arm64', 'Jetson Xavier NX / AGX GPU (Volta, fp16 and int8 tensor cores)', [
    'fp16',
    'dp4a',
    'tensor-cores',
  ]),
  cuda('sm_80', 'x86_64', 'NVIDIA A100 / A30 (Ampere datacenter)', AMPERE),
  cuda('sm_86', 'x86_64', 'NVIDIA RTX 30xx / A10 / A40 (Ampere)', AMPERE),
  cuda('sm_87', 'arm64', 'Jetson Orin Nano / NX / AGX GPU (Ampere)', AMPERE),
  cuda('sm_89', 'x86_64', 'NVIDIA RTX 40xx / L4 / L40 (Ada Lovelace)', [...AMPERE, 'fp8']),
  cuda('sm_90', 'x86_64', 'NVIDIA H100 / H200 (Hopper)', [...AMPERE, 'fp8']),
];

/** Profile key → profile. */
export const TARGET_PROFILES: Readonly<Record<string, TargetProfile>> = Object.freeze(
  Object.fromEntries(TABLE.map((p) => [p.key, p])),
);

/** What `--target` accepts before the colon: the two CPU architectures and `cuda`. */
export const TARGET_FAMILIES = Object.freeze(['x86_64', 'arm64', 'cuda'] as const);
export type TargetFamily = (typeof TARGET_FAMILIES)[number];

/**
 * The profile a bare family names. x86_64 → AVX2: every x86-64 since Haswell/Zen runs it, and its int8 format
 * (U8S8, reduce range) is safe on VNNI machines too, where the VNNI format would saturate on older ones. arm64 →
 * Cortex-A72 (Pi 4): ARMv8.0-A, whose features every listed ARM core has, and all ARM rows share one int8 format.
 * cuda → sm_87 (Jetson Orin): Outpost's CUDA devices are Jetsons and Orin is the generation current JetPack (6)
 * supports; the ONNX a CUDA target ships is not SM-specific (TensorRT builds its engine on the device), so what the
 * default decides is the architecture (arm64) and the precision plan, which is the same for every SM listed.
 */
export const DEFAULT_PROFILES: Readonly<Record<TargetFamily, string>> = Object.freeze({
  x86_64: HOST_DEFAULT_PROFILES.x86_64,
  arm64: HOST_DEFAULT_PROFILES.arm64,
  cuda: 'cuda:sm_87',
});

export function targetKeys(): string[] {
  return Object.keys(TARGET_PROFILES);
}

/** The profiles a family holds, in table order. */
export function familyProfiles(family: TargetFamily): TargetProfile[] {
  return TABLE.filter((p) => targetFamily(p) === family);
}

/** `cuda` for accelerator rows, else the CPU architecture. */
export function targetFamily(p: TargetProfile): TargetFamily {
  return p.accelerator ?? p.arch;
}

export function lookupProfile(key: string): TargetProfile | undefined {
  return Object.hasOwn(TARGET_PROFILES, key) ? TARGET_PROFILES[key] : undefined;
}
