import { describe, expect, it } from 'vitest';
import { canChoose, chooseArtifact } from '../../../fleet/deployments/fit.js';
import type { ThingTarget } from '../../../fleet/store/index.js';
import { artifactRecord } from '../../helpers/fleet-records.js';

const offered = [
  artifactRecord(1, 'x86_64:avx2'),
  artifactRecord(2, 'arm64:cortex-a72'),
  artifactRecord(3, 'cuda:sm_87'),
].map((a, i) => (i === 2 ? { ...a, target: { profile: 'cuda:sm_87', arch: 'arm64' } } : a));

const pick = (target: ThingTarget, from = offered) => {
  const fit = chooseArtifact(target, from);
  return fit.ok ? [fit.artifact.target.profile, fit.fit] : fit.reason;
};

describe('choosing the artifact that fits a thing', () => {
  it.each([
    [{ profile: 'arm64:cortex-a72', arch: 'arm64' }, ['arm64:cortex-a72', 'exact']],
    [{ profile: 'arm64:cortex-a53', arch: 'arm64' }, ['arm64:cortex-a72', 'family']],
    [{ profile: 'x86_64:avx512-vnni', arch: 'x86_64' }, ['x86_64:avx2', 'family']],
    [{ profile: 'cuda:sm_87', cpuProfile: 'arm64:cortex-a78ae', arch: 'arm64' }, ['cuda:sm_87', 'exact']],
    [{ profile: 'cuda:sm_72', cpuProfile: 'arm64:carmel', arch: 'arm64' }, ['cuda:sm_87', 'family']],
  ] as const)('%j gets %j', (target, expected) => {
    expect(pick(target)).toEqual(expected);
  });

  it("a Jetson without a CUDA build gets its CPU's exact build, then its architecture's", () => {
    const cpuOnly = offered.slice(0, 2);
    const a78 = {
      ...artifactRecord(4, 'arm64:cortex-a78ae'),
      target: { profile: 'arm64:cortex-a78ae', arch: 'arm64' },
    };
    expect(pick({ profile: 'cuda:sm_87', cpuProfile: 'arm64:cortex-a78ae', arch: 'arm64' }, [...cpuOnly, a78])).toEqual(
      ['arm64:cortex-a78ae', 'cpu'],
    );
    expect(pick({ profile: 'cuda:sm_87', cpuProfile: 'arm64:cortex-a78ae', arch: 'arm64' }, cpuOnly)).toEqual([
      'arm64:cortex-a72',
      'family',
    ]);
  });

  it('a target-independent artifact is the last resort, and a CUDA build never goes to a plain CPU', () => {
    const any = { ...artifactRecord(5), target: { profile: 'any', arch: 'any' } };
    expect(pick({ profile: 'arm64:cortex-a53', arch: 'arm64' }, [offered[2] ?? any, any])).toEqual(['any', 'any']);
    expect(pick({ profile: 'x86_64:avx2', arch: 'x86_64' }, [offered[1] ?? any, offered[2] ?? any])).toBe(
      'no artifact fits x86_64:avx2; offered: arm64:cortex-a72, cuda:sm_87',
    );
  });

  it('one artifact needs no reported target; several wait for one', () => {
    expect(canChoose({}, offered.slice(0, 1))).toBe(true);
    expect(canChoose({}, offered)).toBe(false);
    expect(canChoose({ arch: 'arm64' }, offered)).toBe(true);
  });
});
