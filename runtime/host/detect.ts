import { readFileSync } from 'node:fs';
import { arch, cpus, platform } from 'node:os';
import { OutpostError } from '../errors.js';

/**
 * Which row of the compiler's target table this machine is (`outpost compile --target host`, and the target profile
 * the device agent reports in its status so the fleet can pick the artifact that fits). Linux says what it has in /proc/cpuinfo (x86
 * `flags`; arm64 `CPU implementer`/`CPU part` and `Features`), and a Jetson says which Tegra it is in its device
 * tree. The reads are gathered into `HostFacts` first, so tests classify canned texts with the same code.
 */
export interface HostFacts {
  /** `os.arch()`: x64, arm64, arm, ia32, … */
  readonly arch: string;
  /** `os.platform()`: linux, darwin, win32, … */
  readonly platform: string;
  /** `os.cpus()[0].model`, for evidence and non-Linux hosts. */
  readonly cpuModel?: string;
  /** /proc/cpuinfo. */
  readonly cpuinfo?: string;
  /** /proc/device-tree/model (NUL-terminated), e.g. "NVIDIA Jetson AGX Orin Developer Kit". */
  readonly deviceTreeModel?: string;
  /** /proc/device-tree/compatible (NUL-separated), e.g. "nvidia,p3737-0000\0nvidia,tegra234\0". */
  readonly deviceTreeCompatible?: string;
  /** /etc/nv_tegra_release, present on Jetson's L4T, e.g. "# R36 (release), REVISION: 3.0, …". */
  readonly tegraRelease?: string;
}

export interface HostTarget {
  /** The profile key to compile for: a Jetson's CUDA profile, otherwise the CPU's, e.g. "arm64:cortex-a72". */
  readonly profile: string;
  /** The CPU's own profile key (equal to `profile` except on a Jetson). */
  readonly cpuProfile: string;
  /** x86_64 | arm64, as manifests and job documents name architectures. */
  readonly arch: 'x86_64' | 'arm64';
  /** What was read and how it decided, one fact a line, for `--verbose` and the compile report. */
  readonly evidence: readonly string[];
}

/**
 * The profile a bare architecture means when nothing finer is known (compiler/targets/profiles.ts DEFAULT_PROFILES
 * takes these): x86_64 → AVX2, which every x86-64 since Haswell/Zen runs; arm64 → Cortex-A72, ARMv8.0-A.
 */
export const HOST_DEFAULT_PROFILES = Object.freeze({ x86_64: 'x86_64:avx2', arm64: 'arm64:cortex-a72' } as const);

/** ARM MIDR implementer and part numbers (Linux arch/arm64/include/asm/cputype.h; util-linux lscpu-arm.c). */
const ARM_PARTS: Readonly<Record<string, { readonly name: string; readonly profile: string }>> = Object.freeze({
  '0x41:0xd03': { name: 'Cortex-A53', profile: 'arm64:cortex-a53' },
  '0x41:0xd07': { name: 'Cortex-A57', profile: 'arm64:cortex-a57' },
  '0x41:0xd08': { name: 'Cortex-A72', profile: 'arm64:cortex-a72' },
  '0x41:0xd0b': { name: 'Cortex-A76', profile: 'arm64:cortex-a76' },
  '0x41:0xd42': { name: 'Cortex-A78AE', profile: 'arm64:cortex-a78ae' },
  '0x4e:0x004': { name: 'NVIDIA Carmel', profile: 'arm64:carmel' },
});

/** Tegra SoC (device-tree compatible string) → the CUDA profile of its GPU. */
const TEGRA_SOCS: Readonly<Record<string, { readonly name: string; readonly profile: string }>> = Object.freeze({
  'nvidia,tegra210': { name: 'Jetson Nano / TX1 (Tegra X1)', profile: 'cuda:sm_53' },
  'nvidia,tegra194': { name: 'Jetson Xavier (Tegra194)', profile: 'cuda:sm_72' },
  'nvidia,tegra234': { name: 'Jetson Orin (Tegra234)', profile: 'cuda:sm_87' },
});

/** A Jetson whose SoC the device tree did not name: its CPU says which one it is. */
const JETSON_BY_CPU: Readonly<Record<string, string>> = Object.freeze({
  'arm64:cortex-a57': 'cuda:sm_53',
  'arm64:carmel': 'cuda:sm_72',
  'arm64:cortex-a78ae': 'cuda:sm_87',
});

function readText(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined; // absent on this OS or board: the classification says what it did without it
  }
}

/** This machine's facts. */
export function readHostFacts(): HostFacts {
  return {
    arch: arch(),
    platform: platform(),
    cpuModel: cpus()[0]?.model,
    cpuinfo: readText('/proc/cpuinfo'),
    deviceTreeModel: readText('/proc/device-tree/model'),
    deviceTreeCompatible: readText('/proc/device-tree/compatible'),
    tegraRelease: readText('/etc/nv_tegra_release'),
  };
}

/** `key: value` lines of /proc/cpuinfo grouped per processor (blocks are separated by blank lines). */
function cpuinfoBlocks(text: string): Map<string, string>[] {
  return text
    .split(/\n\s*\n/)
    .map((block) => {
      const fields = new Map<string, string>();
      for (const line of block.split('\n')) {
        const colon = line.indexOf(':');
        if (colon > 0) fields.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
      }
      return fields;
    })
    .filter((fields) => fields.size > 0);
}

function classifyX86(facts: HostFacts, evidence: string[]): string {
  const block = cpuinfoBlocks(facts.cpuinfo ?? '').find((b) => b.has('flags'));
  if (block === undefined) {
    evidence.push(`no /proc/cpuinfo flags on ${facts.platform}: assuming the x86_64 default (AVX2)`);
    return HOST_DEFAULT_PROFILES.x86_64;
  }
  const flags = new Set((block.get('flags') ?? '').split(/\s+/));
  const seen = ['avx2', 'avx512f', 'avx512_vnni', 'avx_vnni'].filter((f) => flags.has(f));
  evidence.push(`/proc/cpuinfo flags include: ${seen.length > 0 ? seen.join(', ') : 'none of avx2, avx512f, vnni'}`);
  if (flags.has('avx512f')) return flags.has('avx512_vnni') ? 'x86_64:avx512-vnni' : 'x86_64:avx512';
  if (flags.has('avx2')) return flags.has('avx_vnni') ? 'x86_64:avx-vnni' : 'x86_64:avx2';
  evidence.push('no AVX2: no profile is older; x86_64:avx2 is the nearest, and its int8 format is the safe one');
  return HOST_DEFAULT_PROFILES.x86_64;
}

/** An ARM core the table does not name, placed by what its Features line offers (shared by every core). */
function armByFeatures(features: ReadonlySet<string>, evidence: string[]): string {
  const key =
    features.has('asimddp') && features.has('asimdhp')
      ? 'arm64:cortex-a76'
      : features.has('asimdhp')
        ? 'arm64:carmel'
        : HOST_DEFAULT_PROFILES.arm64;
  evidence.push(`nearest profile by features (dot product, fp16 arithmetic): ${key}`);
  return key;
}

function classifyArm(facts: HostFacts, evidence: string[]): string {
  if (facts.cpuinfo === undefined) {
    const apple = facts.cpuModel?.startsWith('Apple') === true;
    evidence.push(
      apple
        ? `${facts.cpuModel ?? 'Apple'}: ARMv8.5-A+ with dot product and fp16, like arm64:cortex-a76`
        : `no /proc/cpuinfo on ${facts.platform}: assuming the arm64 default`,
    );
    return apple ? 'arm64:cortex-a76' : HOST_DEFAULT_PROFILES.arm64;
  }
  const blocks = cpuinfoBlocks(facts.cpuinfo).filter((b) => b.has('cpu part'));
  // Features every core shares: the OS may run us on any of them (big.LITTLE, Denver + A57 on TX2).
  let shared: Set<string> | undefined;
  for (const b of blocks) {
    const own = new Set((b.get('features') ?? '').split(/\s+/).filter((f) => f !== ''));
    shared = shared === undefined ? own : new Set([...shared].filter((f) => own.has(f)));
  }
  const features = shared ?? new Set<string>();
  const parts = [...new Set(blocks.map((b) => `${b.get('cpu implementer') ?? '?'}:${b.get('cpu part') ?? '?'}`))];
  const known = parts.map((p) => (Object.hasOwn(ARM_PARTS, p) ? ARM_PARTS[p] : undefined));
  evidence.push(
    `/proc/cpuinfo CPU implementer:part ${parts.join(', ') || 'absent'} (${known.map((k) => k?.name ?? 'not in the table').join(', ')})`,
  );
  const profiles = [...new Set(known.map((k) => k?.profile))];
  if (profiles.length === 1 && profiles[0] !== undefined) return profiles[0];
  if (profiles.length > 1) evidence.push('cores of different kinds: classifying by the features all of them share');
  return armByFeatures(features, evidence);
}

function jetsonProfile(facts: HostFacts, cpu: string, evidence: string[]): string | undefined {
  const compatible = (facts.deviceTreeCompatible ?? '').split('\0').map((s) => s.trim());
  const soc = compatible.find((c) => Object.hasOwn(TEGRA_SOCS, c));
  const model = facts.deviceTreeModel?.replace(/\0/g, '').trim();
  if (soc !== undefined) {
    const entry = TEGRA_SOCS[soc];
    if (entry !== undefined) {
      evidence.push(`/proc/device-tree/compatible has ${soc}: ${entry.name}${model ? ` ("${model}")` : ''}`);
      return entry.profile;
    }
  }
  const isJetson = facts.tegraRelease !== undefined || /jetson|tegra/i.test(model ?? '');
  if (!isJetson) return undefined;
  const byCpu = Object.hasOwn(JETSON_BY_CPU, cpu) ? JETSON_BY_CPU[cpu] : undefined;
  const release = facts.tegraRelease?.split('\n')[0]?.trim();
  evidence.push(
    `Jetson (${[model, release].filter((s) => s !== undefined && s !== '').join('; ')}) without a known Tegra compatible string: ${byCpu === undefined ? 'its CPU names no Jetson GPU, compiling for the CPU' : `its ${cpu} CPU means ${byCpu}`}`,
  );
  return byCpu === undefined ? undefined : byCpu;
}

/** Classifies a machine from its facts (pure: tests pass canned texts). */
export function classifyHostTarget(facts: HostFacts): HostTarget {
  const evidence = [`os.arch() ${facts.arch} on ${facts.platform}${facts.cpuModel ? ` (${facts.cpuModel})` : ''}`];
  let cpuProfile: string;
  if (facts.arch === 'x64') cpuProfile = classifyX86(facts, evidence);
  else if (facts.arch === 'arm64') cpuProfile = classifyArm(facts, evidence);
  else {
    const hint =
      facts.arch === 'arm' ? ' (a 32-bit OS on a 64-bit board, e.g. a Pi 4, reports arm: use a 64-bit OS)' : '';
    throw new OutpostError(
      'UNKNOWN_TARGET',
      `this host is ${facts.arch} on ${facts.platform}, which no target profile covers${hint}; valid host architectures: x64 (x86_64), arm64`,
      { details: { arch: facts.arch, platform: facts.platform, accepted: ['x64', 'arm64'] } },
    );
  }
  const gpu = facts.arch === 'arm64' ? jetsonProfile(facts, cpuProfile, evidence) : undefined;
  evidence.push(`→ ${gpu ?? cpuProfile}${gpu === undefined ? '' : ` (CPU ${cpuProfile})`}`);
  return { profile: gpu ?? cpuProfile, cpuProfile, arch: facts.arch === 'x64' ? 'x86_64' : 'arm64', evidence };
}

/** Classifies this machine, or the given facts. */
export function detectHostTarget(facts: HostFacts = readHostFacts()): HostTarget {
  return classifyHostTarget(facts);
}
