/** The artifact format: see README.md in this folder for the layout, the checks and their order, and the invariants. */
export * from './manifest.js';
export * from './cascade.js';
export {
  bundledModels,
  filesNotHeld,
  qualifiedVariant,
  variantFiles,
  variantsOfBundled,
  type BundledModel,
  type VariantFile,
} from './bundled.js';
export { canonicalJson, prettyJson } from './canonical.js';
export { sha256Bytes, sha256File, type FileDigest } from './hash.js';
export { syncDir } from './fs-atomic.js';
export {
  PRIVATE_KEY_FILE,
  PUBLIC_KEY_FILE,
  generateSigningKeys,
  keyId,
  loadPrivateKey,
  loadPublicKey,
  loadTrustedKeys,
  writeSigningKeys,
  type SigningKeys,
  type WrittenSigningKeys,
} from './keys.js';
export {
  SIGNATURE_ALGORITHM,
  manifestDigest,
  parseSignatureFile,
  signManifest,
  signedBytes,
  verifyManifestSignature,
  type SignatureFile,
} from './signature.js';
export { formatFieldPath, parseManifestBytes, validateManifest, type ManifestProblem } from './parse.js';
export {
  writeArtifact,
  type ArtifactFileSource,
  type ManifestDraft,
  type VariantDraft,
  type WriteArtifactOptions,
  type WrittenArtifact,
} from './write.js';
export { packArtifact, type PackOptions, type PackedArtifact } from './pack.js';
export { DEFAULT_MAX_UNPACKED_BYTES, unpackArtifact, type UnpackOptions } from './unpack.js';
export { DEFAULT_MAX_MANIFEST_BYTES, verifyArtifact, type VerifyOptions } from './verify.js';
export { VerdictFile, type FileIdentity, type Verdicts } from './verdicts.js';
export { openArtifact, type OpenOptions, type OpenedArtifact } from './open.js';
export { signArtifact, type SignResult } from './resign.js';
export {
  artifactFilePath,
  isVerifiedArtifact,
  presentVariants,
  variantPath,
  type VerifiedArtifact,
} from './verified.js';
