/** Target profiles (one frozen table), `--target` parsing and host detection. See README.md in this folder. */
export type { Arch, QuantizationFormat, TargetProfile } from './types.js';
export {
  DEFAULT_PROFILES,
  TARGET_FAMILIES,
  TARGET_PROFILES,
  familyProfiles,
  lookupProfile,
  targetFamily,
  targetKeys,
  type TargetFamily,
} from './profiles.js';
export { HOST_TARGET, parseTarget, resolveTarget, type ParseTargetOptions, type ResolvedTarget } from './parse.js';
export { classifyHost, detectHost, readHostFacts, type HostDetection, type HostFacts } from './host.js';
