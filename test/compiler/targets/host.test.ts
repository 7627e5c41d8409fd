import { arch } from 'node:os';
import { describe, expect, it } from 'vitest';
import { TARGET_PROFILES, classifyHost, detectHost, type HostFacts } from '../../../compiler/targets/index.js';
import { isOutpostError } from '../../../runtime/errors.js';

/** /proc/cpuinfo with `count` identical processor blocks, as Linux prints it. */
function cpuinfo(fields: Readonly<Record<string, string>>, count = 2): string {
  return Array.from({ length: count }, (_, i) =>
    [`processor\t: ${i}`, ...Object.entries(fields).map(([k, v]) => `${k}\t: ${v}`)].join('\n'),
  ).join('\n\n');
}

const X86_BASE =
  'fpu vme de pse tsc msr pae mce cx8 apic sep sse sse2 ssse3 fma cx16 sse4_1 sse4_2 popcnt aes avx f16c';

function x86(flags: string): HostFacts {
  return { arch: 'x64', platform: 'linux', cpuModel: 'test', cpuinfo: cpuinfo({ 'model name': 'test', flags }) };
}

/**
 * ARM texts from real boards (hrw/arm-socs-table issues: Pi 3B #6, Pi 5 #96, Xavier AGX #63, Nano #37; Orin's Features
 * from KavrakiLab/vamp#20; Pi 4's from a 64-bit Raspberry Pi OS).
 */
const ARM = Object.freeze({
  pi3: { Features: 'fp asimd evtstrm crc32 cpuid', 'CPU implementer': '0x41', 'CPU part': '0xd03' },
  pi4: { Features: 'fp asimd evtstrm crc32 cpuid', 'CPU implementer': '0x41', 'CPU part': '0xd08' },
  pi5: {
    Features: 'fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp',
    'CPU implementer': '0x41',
    'CPU part': '0xd0b',
  },
  orin: {
    Features:
      'fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp uscat ilrcpc flagm paca pacg',
    'CPU implementer': '0x41',
    'CPU part': '0xd42',
  },
  xavier: {
    Features: 'fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm dcpop',
    'CPU implementer': '0x4e',
    'CPU part': '0x004',
  },
  nano: {
    Features: 'fp asimd evtstrm aes pmull sha1 sha2 crc32 cpuid',
    'CPU implementer': '0x41',
    'CPU part': '0xd07',
  },
});

function arm(board: keyof typeof ARM, extra: Partial<HostFacts> = {}): HostFacts {
  return { arch: 'arm64', platform: 'linux', cpuinfo: cpuinfo(ARM[board], 4), ...extra };
}

describe('host detection: x86_64', () => {
  it.each([
    ['AVX2 only', `${X86_BASE} avx2`, 'x86_64:avx2'],
    ['AVX2 + AVX-VNNI (Alder Lake)', `${X86_BASE} avx2 avx_vnni`, 'x86_64:avx-vnni'],
    ['AVX-512 without VNNI (Skylake-SP)', `${X86_BASE} avx2 avx512f avx512dq avx512bw avx512vl`, 'x86_64:avx512'],
    ['AVX-512 VNNI', `${X86_BASE} avx2 avx512f avx512bw avx512vl avx512_vnni`, 'x86_64:avx512-vnni'],
    ['no AVX2 (nearest is the default)', X86_BASE, 'x86_64:avx2'],
  ])('%s → %s', (_, flags, key) => {
    const detected = classifyHost(x86(flags));
    expect(detected.profile.key).toBe(key);
    expect(detected.cpuProfile).toBe(detected.profile);
    expect(detected.evidence.join('\n')).toContain('/proc/cpuinfo flags');
  });

  it('assumes the x86_64 default without /proc/cpuinfo (macOS, Windows) and says so', () => {
    const detected = classifyHost({ arch: 'x64', platform: 'win32' });
    expect(detected.profile.key).toBe('x86_64:avx2');
    expect(detected.evidence.join('\n')).toMatch(/no \/proc\/cpuinfo flags on win32/);
  });
});

describe('host detection: arm64', () => {
  it.each([
    ['Raspberry Pi 3', 'pi3', 'arm64:cortex-a53'],
    ['Raspberry Pi 4', 'pi4', 'arm64:cortex-a72'],
    ['Raspberry Pi 5', 'pi5', 'arm64:cortex-a76'],
  ] as const)('%s → %s from CPU part', (_, board, key) => {
    const detected = classifyHost(arm(board));
    expect(detected.profile.key).toBe(key);
    expect(detected.evidence.join('\n')).toMatch(/CPU implementer:part 0x4\w:0x\w+/);
  });

  it('classifies a Jetson Orin as cuda:sm_87 from its device tree, keeping the A78AE as the CPU profile', () => {
    const detected = classifyHost(
      arm('orin', {
        deviceTreeModel: 'NVIDIA Jetson AGX Orin Developer Kit\0',
        deviceTreeCompatible: 'nvidia,p3737-0000+p3701-0000\0nvidia,p3701-0000\0nvidia,tegra234\0',
        tegraRelease: '# R36 (release), REVISION: 3.0, GCID: 36923193, BOARD: generic, EABI: aarch64',
      }),
    );
    expect(detected.profile.key).toBe('cuda:sm_87');
    expect(detected.cpuProfile.key).toBe('arm64:cortex-a78ae');
    expect(detected.evidence.join('\n')).toContain('nvidia,tegra234');
  });

  it('classifies Xavier by its compatible string and a Nano from nv_tegra_release plus its CPU', () => {
    const xavier = classifyHost(arm('xavier', { deviceTreeCompatible: 'nvidia,p2972-0000\0nvidia,tegra194\0' }));
    expect([xavier.profile.key, xavier.cpuProfile.key]).toEqual(['cuda:sm_72', 'arm64:carmel']);
    const nano = classifyHost(arm('nano', { tegraRelease: '# R32 (release), REVISION: 7.1' }));
    expect([nano.profile.key, nano.cpuProfile.key]).toEqual(['cuda:sm_53', 'arm64:cortex-a57']);
  });

  it('places an unknown core by the features all cores share (big.LITTLE takes the smaller set)', () => {
    const a55 = { ...ARM.pi5, 'CPU part': '0xd05' };
    expect(classifyHost({ arch: 'arm64', platform: 'linux', cpuinfo: cpuinfo(a55) }).profile.key).toBe(
      'arm64:cortex-a76',
    );
    const mixed = `${cpuinfo(ARM.pi5, 1)}\n\n${cpuinfo(ARM.pi3, 1)}`;
    const detected = classifyHost({ arch: 'arm64', platform: 'linux', cpuinfo: mixed });
    expect(detected.profile.key).toBe('arm64:cortex-a72');
    expect(detected.evidence.join('\n')).toContain('cores of different kinds');
  });

  it('refuses a 32-bit ARM OS with UNKNOWN_TARGET, naming the architectures it accepts', () => {
    try {
      classifyHost({ arch: 'arm', platform: 'linux', cpuinfo: cpuinfo(ARM.pi4) });
      expect.unreachable();
    } catch (error) {
      expect(isOutpostError(error, 'UNKNOWN_TARGET')).toBe(true);
      expect((error as Error).message).toMatch(/this host is arm on linux.*64-bit OS.*x64 \(x86_64\), arm64/);
    }
  });
});

describe('host detection: this machine', () => {
  it('finds a profile of the table for the machine the tests run on', () => {
    const detected = detectHost();
    expect(Object.values(TARGET_PROFILES)).toContain(detected.profile);
    expect(detected.profile.arch).toBe(arch() === 'x64' ? 'x86_64' : 'arm64');
    expect(detected.evidence[0]).toContain(`os.arch() ${arch()}`);
  });
});
