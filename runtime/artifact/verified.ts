import { join } from 'node:path';
import { OutpostError } from '../errors.js';
import type { Manifest } from './manifest.js';

/**
 * A verified artifact, and the only way to get file paths out of one. `verifyArtifact`/`openArtifact` register what
 * they return; the accessors below refuse anything else, so a caller cannot hand a hand-made `{ dir, manifest }` to
 * the loader and have unverified bytes loaded. The manifest is deep-frozen: editing it after verification (to point a
 * variant at another file) throws instead of silently redirecting the loader.
 *
 * A verification holds only while nobody else writes the directory; the device store makes its version directories
 * immutable and `openArtifact` unpacks into a private temporary directory for exactly that reason.
 */
export interface VerifiedArtifact {
  /** Absolute, symlinks resolved: a later swap of a `current` link does not change what this object points at. */
  readonly dir: string;
  readonly manifest: Manifest;
  /** `manifestDigest` of manifest.json as read: the artifact's identity (same digest, same files). */
  readonly manifestSha256: string;
  /** Key id of the trusted key that signed the manifest; absent when the signature was not checked. */
  readonly signer?: string;
  /** Variants whose model file this device did not fetch (VerifyOptions.absentVariants); absent when all are here. */
  readonly absentVariants?: readonly string[];
}

const registry = new WeakSet<object>();

/** Freezes and registers a verification result. Only the verification code calls this. */
export function markVerified<T extends VerifiedArtifact>(artifact: T): T {
  deepFreeze(artifact.manifest);
  registry.add(Object.freeze(artifact));
  return artifact;
}

export function isVerifiedArtifact(value: unknown): value is VerifiedArtifact {
  return typeof value === 'object' && value !== null && registry.has(value);
}

/** Absolute path of a variant's model file. */
export function variantPath(artifact: VerifiedArtifact, variantId: string): string {
  requireVerified(artifact);
  const variant = artifact.manifest.variants.find((v) => v.id === variantId);
  if (variant === undefined) {
    const ids = artifact.manifest.variants.map((v) => v.id);
    throw new OutpostError(
      'VARIANT_NOT_FOUND',
      `artifact ${artifact.manifest.name} has no variant "${variantId}"; it has ${ids.join(', ')}`,
      {
        details: { variant: variantId, available: ids },
      },
    );
  }
  if (artifact.absentVariants?.includes(variantId) === true) {
    throw new OutpostError(
      'VARIANT_NOT_FOUND',
      `variant "${variantId}" of artifact ${artifact.manifest.name} was not fetched to this device; it has ${presentVariants(artifact).join(', ')}`,
      { details: { variant: variantId, available: presentVariants(artifact) } },
    );
  }
  return join(artifact.dir, variant.file);
}

/** Ids of the variants whose files are in the artifact directory (all, unless some were not fetched). */
export function presentVariants(artifact: VerifiedArtifact): string[] {
  const absent = new Set(artifact.absentVariants ?? []);
  return artifact.manifest.variants.filter((v) => !absent.has(v.id)).map((v) => v.id);
}

/** Absolute path of any file the manifest covers (labels, test vectors); others are not part of the artifact. */
export function artifactFilePath(artifact: VerifiedArtifact, path: string): string {
  requireVerified(artifact);
  if (!Object.hasOwn(artifact.manifest.files, path)) {
    throw new OutpostError('ARTIFACT_FILE_MISSING', `"${path}" is not a file of artifact ${artifact.manifest.name}`, {
      details: { path, available: Object.keys(artifact.manifest.files) },
    });
  }
  return join(artifact.dir, path);
}

function requireVerified(artifact: VerifiedArtifact): void {
  if (!registry.has(artifact)) {
    throw new OutpostError(
      'INVALID_ARGUMENT',
      'not a verified artifact: obtain it from verifyArtifact() or openArtifact()',
    );
  }
}

function deepFreeze(value: unknown): void {
  if (typeof value !== 'object' || value === null || Object.isFrozen(value)) return;
  Object.freeze(value);
  for (const child of Object.values(value)) deepFreeze(child);
}
