import {
  filesNotHeld,
  loadTrustedKeys,
  manifestDigest,
  parseManifestBytes,
  variantFiles,
  verifyManifestSignature,
  type BackendName,
  type Manifest,
} from '../runtime/artifact/index.js';
import { OutpostError } from '../runtime/errors.js';
import type { DeliveryFile, DeliveryIndex } from './protocol/index.js';

/**
 * What a device decides from the delivery index of a `files`-layout stream, before it fetches one payload byte
 * (docs/job-document.md, "Stream layouts"): whether it will take the artifact at all (signature, signer, model,
 * name and version, target, and that the index describes exactly the files the signed manifest lists), and which
 * variants it will consider. The checks are verifyArtifact's, in its order, with its error codes; the full
 * verification still runs on the staged files before anything is installed.
 */
export interface DeliveryPolicy {
  readonly trustedKeys: readonly string[];
  readonly requireSignature: boolean;
  readonly arch: 'x86_64' | 'arm64';
  /** Models this device may run; empty: any. */
  readonly models: readonly string[];
  /** What the job says it deploys: the signed manifest must agree. */
  readonly job: { readonly name: string; readonly version: string };
}

export interface CheckedDelivery {
  readonly manifest: Manifest;
  readonly manifestBytes: Buffer;
  readonly signatureBytes: Buffer | undefined;
  readonly manifestSha256: string;
  /** The index's entries by artifact path, each matching the signed manifest's size and sha256. */
  readonly files: ReadonlyMap<string, DeliveryFile>;
}

export async function checkDelivery(index: DeliveryIndex, policy: DeliveryPolicy): Promise<CheckedDelivery> {
  const manifestBytes = Buffer.from(index.manifest, 'base64');
  const signatureBytes = index.signature === undefined ? undefined : Buffer.from(index.signature, 'base64');
  const { manifest } = parseManifestBytes(manifestBytes);
  const trusted = await loadTrustedKeys(policy.trustedKeys);
  if (signatureBytes === undefined) {
    if (policy.requireSignature) {
      throw new OutpostError(
        'ARTIFACT_SIGNATURE_MISSING',
        `${manifest.name} ${manifest.version} is unsigned and this device requires signatures: refused before its files were fetched`,
        { details: { trusted: [...trusted.keys()] } },
      );
    }
  } else if (trusted.size > 0) {
    verifyManifestSignature(manifestBytes, signatureBytes, trusted); // throws for an untrusted signer or a bad one
  } else if (policy.requireSignature) {
    throw new OutpostError('ARTIFACT_SIGNATURE_INVALID', 'signatures are required but no trusted keys are configured');
  }
  const { name, version } = manifest;
  if (name !== policy.job.name || version !== policy.job.version) {
    throw new OutpostError(
      'ARTIFACT_MANIFEST_INVALID',
      `the artifact is ${name}@${version}; the job deploys ${policy.job.name}@${policy.job.version}`,
    );
  }
  if (policy.models.length > 0 && !policy.models.includes(name)) {
    throw new OutpostError('MODEL_NOT_ALLOWED', `this device runs ${policy.models.join(', ')}, not "${name}"`);
  }
  const { arch, profile } = manifest.target;
  if (arch !== 'any' && arch !== policy.arch) {
    throw new OutpostError(
      'ARTIFACT_TARGET_MISMATCH',
      `artifact ${name} ${version} targets ${arch} (${profile}); this host is ${policy.arch}, which accepts ${policy.arch} or any`,
      { details: { artifact: arch, profile, host: policy.arch, accepted: [policy.arch, 'any'] } },
    );
  }
  return {
    manifest,
    manifestBytes,
    signatureBytes,
    manifestSha256: manifestDigest(manifestBytes),
    files: entries(index, manifest),
  };
}

/** The index must list exactly the manifest's files, each with the signed size and sha256. */
function entries(index: DeliveryIndex, manifest: Manifest): Map<string, DeliveryFile> {
  const files = new Map(index.files.map((f) => [f.path, f]));
  for (const [path, expected] of Object.entries(manifest.files)) {
    const entry = files.get(path);
    if (entry === undefined) {
      throw new OutpostError('ARTIFACT_FILE_MISSING', `the delivery index lacks ${path}, listed in manifest.json`, {
        details: { path },
      });
    }
    if (entry.size !== expected.bytes || entry.sha256 !== expected.sha256) {
      throw new OutpostError(
        'ARTIFACT_HASH_MISMATCH',
        `the delivery index describes ${path} as ${entry.size} bytes sha256 ${entry.sha256}; manifest.json says ${expected.bytes} bytes sha256 ${expected.sha256}`,
        { details: { path, expected, actual: { bytes: entry.size, sha256: entry.sha256 } } },
      );
    }
  }
  const unexpected = index.files.filter((f) => !Object.hasOwn(manifest.files, f.path)).map((f) => f.path);
  if (unexpected.length > 0) {
    throw new OutpostError(
      'ARTIFACT_FILE_UNEXPECTED',
      `the delivery index carries files manifest.json does not cover: ${unexpected.join(', ')}`,
      { details: { unexpected } },
    );
  }
  return files;
}

/**
 * The variants this device would run, best first: those a backend it may use lists, by rank (ties by order). The
 * first `benchmarkVariants` are fetched; the rest wait as fallbacks should those fail their self-test.
 */
export function rankedVariants(manifest: Manifest, backend: BackendName | 'auto'): string[] {
  const usable = (backends: readonly BackendName[]) => backend === 'auto' || backends.includes(backend);
  return manifest.variants
    .map((v, order) => ({ v, order }))
    .filter(({ v }) => usable(v.backends))
    .sort((a, b) => a.v.rank - b.v.rank || a.order - b.order)
    .map(({ v }) => v.id);
}

/**
 * The artifact's files a device needs to run `variants`: every file but the other variants' model files. For a
 * pipeline, `variants` are its bundled models' (`det/int8`, runtime/artifact/bundled.ts) and `bundled` their
 * manifests by key.
 */
export function filesFor(
  manifest: Manifest,
  variants: readonly string[],
  bundled: ReadonlyMap<string, Manifest> = new Map(),
): string[] {
  const skipped = filesNotHeld(variantFiles(manifest, bundled), variants); // a file two variants share is kept
  return Object.keys(manifest.files)
    .filter((path) => !skipped.has(path))
    .sort();
}

/** Variants of `manifest` (or of its bundled models) not in `variants`: what an install of only those leaves absent. */
export function absentVariants(
  manifest: Manifest,
  variants: readonly string[],
  bundled: ReadonlyMap<string, Manifest> = new Map(),
): string[] {
  return variantFiles(manifest, bundled)
    .filter((v) => !variants.includes(v.id))
    .map((v) => v.id);
}
