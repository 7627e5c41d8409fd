import { OutpostError } from '../../runtime/errors.js';
import { detectHost, type HostDetection, type HostFacts } from './host.js';
import {
  DEFAULT_PROFILES,
  TARGET_FAMILIES,
  familyProfiles,
  lookupProfile,
  targetKeys,
  type TargetFamily,
} from './profiles.js';
import type { TargetProfile } from './types.js';

/**
 * `--target` syntax: `host`, a family (`x86_64`, `arm64`, `cuda`: its default profile) or `family:cpu`, e.g.
 * `arm64:cortex-a76`, `cuda:sm_87`. Case does not matter, and the names `uname -m` and Node print for the
 * architectures (`aarch64`, `amd64`, `x64`) are accepted as synonyms.
 */
const FAMILY_SYNONYMS: Readonly<Record<string, TargetFamily>> = Object.freeze({
  x86_64: 'x86_64',
  'x86-64': 'x86_64',
  amd64: 'x86_64',
  x64: 'x86_64',
  arm64: 'arm64',
  aarch64: 'arm64',
  cuda: 'cuda',
});

export const HOST_TARGET = 'host';

export interface ResolvedTarget {
  readonly profile: TargetProfile;
  /** The spec was `host`: the compiler runs on the target, so hardware-specific optimisation is allowed. */
  readonly host: boolean;
  /** How the host was classified (only for `host`). */
  readonly detection?: HostDetection;
}

export interface ParseTargetOptions {
  /** Facts about the machine for `host` (tests pass canned /proc texts); read from this machine when absent. */
  readonly hostFacts?: HostFacts;
}

function unknownTarget(spec: string, message: string, accepted: readonly string[]): OutpostError {
  return new OutpostError('UNKNOWN_TARGET', `${message}; valid targets: ${accepted.join(', ')}`, {
    details: { target: spec, accepted },
  });
}

/** `--target` → profile, plus whether it is the host. Unknown names are UNKNOWN_TARGET listing what is valid. */
export function resolveTarget(spec: string, options: ParseTargetOptions = {}): ResolvedTarget {
  const text = spec.trim().toLowerCase();
  const all = [HOST_TARGET, ...TARGET_FAMILIES, ...targetKeys()];
  if (text === HOST_TARGET) {
    const detection = detectHost(options.hostFacts);
    return { profile: detection.profile, host: true, detection };
  }
  const colon = text.indexOf(':');
  const familyText = colon < 0 ? text : text.slice(0, colon);
  const cpuText = colon < 0 ? '' : text.slice(colon + 1);
  const family = Object.hasOwn(FAMILY_SYNONYMS, familyText) ? FAMILY_SYNONYMS[familyText] : undefined;
  if (family === undefined) {
    throw unknownTarget(
      spec,
      `unknown target "${spec}": expected ${HOST_TARGET} or ${TARGET_FAMILIES.join(', ')}, optionally with :<cpu>`,
      all,
    );
  }
  if (colon < 0) return { profile: profileOf(DEFAULT_PROFILES[family]), host: false };
  const profile = lookupProfile(`${family}:${cpuText}`);
  if (profile === undefined) {
    const cpus = familyProfiles(family).map((p) => p.cpu);
    throw new OutpostError(
      'UNKNOWN_TARGET',
      `unknown ${family === 'cuda' ? 'compute capability' : 'cpu'} "${cpuText}" for ${family}; ${family} accepts: ${cpus.join(', ')} (e.g. ${family}:${cpus[0] ?? ''})`,
      { details: { target: spec, family, cpu: cpuText, accepted: cpus.map((c) => `${family}:${c}`) } },
    );
  }
  return { profile, host: false };
}

/** `--target` → profile (see `resolveTarget` for whether it is the host). */
export function parseTarget(spec: string, options: ParseTargetOptions = {}): TargetProfile {
  return resolveTarget(spec, options).profile;
}

function profileOf(key: string): TargetProfile {
  const profile = lookupProfile(key);
  if (profile === undefined) throw new OutpostError('INTERNAL', `default target ${key} is not in the table`);
  return profile;
}
