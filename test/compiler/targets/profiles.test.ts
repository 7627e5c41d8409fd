import { describe, expect, it } from 'vitest';
import {
  DEFAULT_PROFILES,
  TARGET_PROFILES,
  familyProfiles,
  parseTarget,
  resolveTarget,
  targetKeys,
} from '../../../compiler/targets/index.js';
import { isOutpostError, type OutpostError } from '../../../runtime/errors.js';

function profile(key: string) {
  const p = TARGET_PROFILES[key];
  if (p === undefined) throw new Error(`no profile ${key}`);
  return p;
}

function thrown(fn: () => unknown): OutpostError {
  try {
    fn();
  } catch (error) {
    if (isOutpostError(error)) return error;
    throw error;
  }
  throw new Error('expected an OutpostError');
}

describe('target table', () => {
  it('holds every profile the compiler promises, keyed arch:cpu', () => {
    expect(targetKeys()).toEqual(
      expect.arrayContaining([
        'x86_64:avx2',
        'x86_64:avx512',
        'x86_64:avx512-vnni',
        'arm64:cortex-a53',
        'arm64:cortex-a72',
        'arm64:cortex-a76',
        'arm64:carmel',
        'arm64:cortex-a78ae',
        'cuda:sm_53',
        'cuda:sm_72',
        'cuda:sm_80',
        'cuda:sm_86',
        'cuda:sm_87',
        'cuda:sm_89',
        'cuda:sm_90',
      ]),
    );
    for (const [key, p] of Object.entries(TARGET_PROFILES)) {
      expect(p.key).toBe(key);
      expect(key).toBe(`${p.accelerator ?? p.arch}:${p.cpu}`);
    }
  });

  it('is frozen, down to the lists', () => {
    expect(Object.isFrozen(TARGET_PROFILES)).toBe(true);
    for (const p of Object.values(TARGET_PROFILES)) {
      expect(Object.isFrozen(p)).toBe(true);
      expect(Object.isFrozen(p.features)).toBe(true);
      expect(Object.isFrozen(p.quantization)).toBe(true);
      expect(Object.isFrozen(p.precisions)).toBe(true);
    }
  });

  it('gives ARM cores the features /proc/cpuinfo reports for them', () => {
    const a53 = profile('arm64:cortex-a53').features;
    expect(a53).not.toContain('asimddp');
    expect(a53).not.toContain('asimdhp');
    for (const key of ['arm64:cortex-a76', 'arm64:cortex-a78ae']) {
      expect(profile(key).features).toEqual(expect.arrayContaining(['asimddp', 'asimdhp', 'fphp']));
    }
    // Carmel: ARMv8.2 fp16 arithmetic, but its Features line has no asimddp (hrw/arm-socs-table#63).
    expect(profile('arm64:carmel').features).toContain('asimdhp');
    expect(profile('arm64:carmel').features).not.toContain('asimddp');
  });

  it('plans int8 then fp32 on CPUs and fp16 then fp32 on CUDA, with the providers and WASM to match', () => {
    for (const p of Object.values(TARGET_PROFILES)) {
      if (p.accelerator === 'cuda') {
        expect(p.precisions).toEqual(['fp16', 'fp32']);
        expect(p.executionProviders).toEqual(['tensorrt', 'cuda', 'cpu']);
        expect(p.wasmFallback).toBe(false);
      } else {
        expect(p.precisions).toEqual(['int8', 'fp32']);
        expect(p.executionProviders).toEqual(['cpu']);
        expect(p.wasmFallback).toBe(true);
      }
      expect(p.quantization.perChannel).toBe(true);
    }
  });

  it('quantises U8S8 with reduced range on x86 without VNNI, U8S8 with VNNI and S8S8 on ARM', () => {
    expect(profile('x86_64:avx2').quantization).toMatchObject({
      activations: 'uint8',
      weights: 'int8',
      reduceRange: true,
    });
    expect(profile('x86_64:avx512').quantization.reduceRange).toBe(true);
    expect(profile('x86_64:avx512-vnni').quantization).toMatchObject({ activations: 'uint8', reduceRange: false });
    for (const p of familyProfiles('arm64')) {
      expect(p.quantization).toMatchObject({ activations: 'int8', weights: 'int8', reduceRange: false });
    }
  });

  it('puts Jetson GPUs on arm64 and desktop GPUs on x86_64', () => {
    for (const sm of ['sm_53', 'sm_72', 'sm_87']) expect(profile(`cuda:${sm}`).arch).toBe('arm64');
    for (const sm of ['sm_80', 'sm_86', 'sm_89', 'sm_90']) expect(profile(`cuda:${sm}`).arch).toBe('x86_64');
  });
});

describe('parseTarget', () => {
  it('maps a bare family to its default profile', () => {
    expect(DEFAULT_PROFILES).toEqual({ x86_64: 'x86_64:avx2', arm64: 'arm64:cortex-a72', cuda: 'cuda:sm_87' });
    expect(parseTarget('x86_64').key).toBe('x86_64:avx2');
    expect(parseTarget('arm64').key).toBe('arm64:cortex-a72');
    expect(parseTarget('cuda').key).toBe('cuda:sm_87');
  });

  it('accepts arch:cpu, any case, and the names uname and Node use for the architectures', () => {
    expect(parseTarget('arm64:cortex-a76').key).toBe('arm64:cortex-a76');
    expect(parseTarget('AArch64:Cortex-A53').key).toBe('arm64:cortex-a53');
    expect(parseTarget(' amd64:avx512-vnni ').key).toBe('x86_64:avx512-vnni');
    expect(parseTarget('x64').key).toBe('x86_64:avx2');
    expect(parseTarget('CUDA:SM_72').key).toBe('cuda:sm_72');
    expect(resolveTarget('cuda:sm_90').host).toBe(false);
  });

  it('refuses an unknown family with UNKNOWN_TARGET listing every valid target', () => {
    const error = thrown(() => parseTarget('riscv64'));
    expect(error.code).toBe('UNKNOWN_TARGET');
    expect(error.message).toContain('"riscv64"');
    for (const key of ['host', 'x86_64', 'arm64', 'cuda', ...targetKeys()]) expect(error.message).toContain(key);
  });

  it('refuses an unknown cpu of a known family listing that family’s cpus only', () => {
    const error = thrown(() => parseTarget('arm64:cortex-a99'));
    expect(error.code).toBe('UNKNOWN_TARGET');
    expect(error.message).toMatch(/unknown cpu "cortex-a99" for arm64; arm64 accepts: cortex-a53, .*cortex-a78ae/);
    expect(error.message).not.toContain('avx2');
    expect(error.details.accepted).toEqual(familyProfiles('arm64').map((p) => p.key));
    expect(thrown(() => parseTarget('cuda:sm_70')).message).toContain(
      'sm_53, sm_72, sm_80, sm_86, sm_87, sm_89, sm_90',
    );
  });

  it('resolves host through host detection and marks it as the host', () => {
    const resolved = resolveTarget('host', {
      hostFacts: { arch: 'x64', platform: 'linux', cpuinfo: 'processor\t: 0\nflags\t\t: fpu sse avx avx2 fma\n' },
    });
    expect(resolved).toMatchObject({ host: true, profile: { key: 'x86_64:avx2' } });
    expect(resolved.detection?.evidence.length).toBeGreaterThan(1);
  });
});
