import { OutpostError } from '../../runtime/errors.js';
import { classifyHostTarget, readHostFacts, type HostFacts } from '../../runtime/host/index.js';
import { lookupProfile } from './profiles.js';
import type { TargetProfile } from './types.js';

/**
 * `--target host`: which row of the target table this machine is. The detection itself lives in runtime/host/ (the
 * device agent reports the same answer in its status, and may not import the compiler); here its keys become rows.
 */
export type { HostFacts } from '../../runtime/host/index.js';
export { readHostFacts };

export interface HostDetection {
  /** The profile to compile for: a Jetson's CUDA profile, otherwise the CPU's. */
  readonly profile: TargetProfile;
  /** The CPU's own profile (equal to `profile` except on a Jetson). */
  readonly cpuProfile: TargetProfile;
  /** What was read and how it decided, one fact a line, for `--verbose` and the compile report. */
  readonly evidence: readonly string[];
}

function profileOf(key: string): TargetProfile {
  const p = lookupProfile(key);
  if (p === undefined) throw new OutpostError('INTERNAL', `host detection chose ${key}, which is not in the table`);
  return p;
}

/** Classifies a machine from its facts (pure: tests pass canned texts). */
export function classifyHost(facts: HostFacts): HostDetection {
  const target = classifyHostTarget(facts);
  return { profile: profileOf(target.profile), cpuProfile: profileOf(target.cpuProfile), evidence: target.evidence };
}

/** Classifies this machine, or the given facts. */
export function detectHost(facts: HostFacts = readHostFacts()): HostDetection {
  return classifyHost(facts);
}
