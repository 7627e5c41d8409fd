import type { ArtifactFit, ArtifactRecord, ThingTarget } from '../store/index.js';

/**
 * Which of a deployment's artifacts a thing gets, from the target it reported (its status `host`): the exact profile
 * (cuda:sm_87 on that Jetson), else the exact CPU profile (a Jetson's arm64:cortex-a78ae build), else one of the same
 * family (cuda for a CUDA device, then its CPU architecture: an arm64:cortex-a72 build on a Cortex-A53, whose int8
 * format every ARM row shares), else a target-independent one (`any`, for this architecture or any). Equal fits go
 * to the artifact given first. Nothing fits: the reason names the thing's target and what was offered.
 */
export type Fit = { ok: true; artifact: ArtifactRecord; fit: ArtifactFit } | { ok: false; reason: string };

const family = (profile: string | undefined): string | undefined => profile?.split(':')[0];

function rank(target: ThingTarget, artifact: ArtifactRecord): [number, ArtifactFit] | undefined {
  const { profile, arch } = artifact.target;
  const cpuProfile = target.cpuProfile ?? target.profile;
  const archFits = arch === 'any' || target.arch === undefined || arch === target.arch;
  if (profile === 'any') return archFits ? [5, 'any'] : undefined;
  if (!archFits) return undefined;
  if (profile === target.profile) return [1, 'exact'];
  if (profile === cpuProfile) return [2, 'cpu'];
  // The device's own family first (cuda on a Jetson), then its CPU's.
  const f = family(profile);
  if (f === family(target.profile)) return [3, 'family'];
  if (f === family(cpuProfile)) return [4, 'family'];
  return undefined;
}

export function describeTarget(target: ThingTarget): string {
  if (target.profile === undefined) return target.arch === undefined ? 'an unreported target' : target.arch;
  return target.cpuProfile !== undefined && target.cpuProfile !== target.profile
    ? `${target.profile} (CPU ${target.cpuProfile})`
    : target.profile;
}

export function chooseArtifact(target: ThingTarget, offered: readonly ArtifactRecord[]): Fit {
  let best: { artifact: ArtifactRecord; rank: number; fit: ArtifactFit } | undefined;
  for (const artifact of offered) {
    const r = rank(target, artifact);
    if (r !== undefined && (best === undefined || r[0] < best.rank)) best = { artifact, rank: r[0], fit: r[1] };
  }
  if (best !== undefined) return { ok: true, artifact: best.artifact, fit: best.fit };
  return {
    ok: false,
    reason: `no artifact fits ${describeTarget(target)}; offered: ${offered.map((a) => a.target.profile).join(', ')}`,
  };
}

/** Whether the choice can be made now: one artifact needs no target; several need the thing to have reported one. */
export function canChoose(target: ThingTarget | undefined, offered: readonly ArtifactRecord[]): boolean {
  return offered.length === 1 || target?.profile !== undefined || target?.arch !== undefined;
}
