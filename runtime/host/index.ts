/** This machine's target profile (host detection), for the compiler's `--target host` and the agent's status. */
export {
  HOST_DEFAULT_PROFILES,
  classifyHostTarget,
  detectHostTarget,
  readHostFacts,
  type HostFacts,
  type HostTarget,
} from './detect.js';
export { onnxruntimeVersion } from './versions.js';
