import { constants } from 'node:fs';
import { lstat, open, readFile, realpath, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { KeyObject } from 'node:crypto';
import { OutpostError, fromFsError } from '../errors.js';
import { logger } from '../log.js';
import { bundledModels, filesNotHeld, variantFiles, variantsOfBundled, type VariantFile } from './bundled.js';
import { OPEN_NOFOLLOW, sha256File } from './hash.js';
import { loadTrustedKeys } from './keys.js';
import { MANIFEST_FILE, SIGNATURE_FILE, type Manifest, type Target } from './manifest.js';
import { parseManifestBytes } from './parse.js';
import { manifestDigest, verifyManifestSignature } from './signature.js';
import { markVerified, type VerifiedArtifact } from './verified.js';
import { listArtifactFiles } from './walk.js';
import type { Verdicts } from './verdicts.js';

export interface VerifyOptions {
  /** Public keys (KeyObject, PEM, or path to a PEM) whose signatures are accepted. */
  trustedKeys?: readonly (KeyObject | string)[];
  /** Refuse an unsigned artifact. Default: true when `trustedKeys` is given, else false. */
  requireSignature?: boolean;
  /** The host the artifact must run on; a manifest with arch "any" fits every host. */
  target?: { arch: Exclude<Target['arch'], 'any'> };
  /** Cap on manifest.json. */
  maxManifestBytes?: number;
  /**
   * Files hashed before and unchanged since (same inode, size, mtime and ctime) are not hashed again; files hashed
   * now are remembered. The manifest, its signature and the file set are checked every time.
   */
  verdicts?: Verdicts;
  /**
   * Variants a device did not fetch (the `files` stream layout): their model files may be absent, as long as one
   * variant is whole; every other file must be present, and every present file is checked. The variants actually
   * absent are listed in the result's `absentVariants`, and nothing loads them (variantPath refuses them). For a
   * pipeline, the variants of its bundled models, as `<model key>/<variant id>` (bundled.ts): one variant of each
   * such model must be whole, and its manifest.json (hashed first) says which file each variant is.
   */
  absentVariants?: readonly string[];
}

export const DEFAULT_MAX_MANIFEST_BYTES = 16 * 1024 * 1024; // bytes: manifests are kilobytes; this bounds parse memory
const MAX_SIGNATURE_BYTES = 64 * 1024; // bytes: manifest.sig is ~200 bytes of JSON

const log = logger('artifact');

/**
 * Verifies an artifact directory, strictly and in this order, each failure its own code (README.md, "Verification"):
 * manifest read + JSON → schema version → schema and cross-references → signature → directory walk (symlinks,
 * unexpected and missing files) → size and sha256 of every file → target. Cheap checks on the manifest come before
 * any file is read, and the signature before the manifest's claims about files are acted on.
 */
export async function verifyArtifact(dir: string, options: VerifyOptions = {}): Promise<VerifiedArtifact> {
  const trusted = await loadTrustedKeys(options.trustedKeys ?? []);
  const requireSignature = options.requireSignature ?? options.trustedKeys !== undefined;
  if (requireSignature && trusted.size === 0) {
    throw new OutpostError('INVALID_ARGUMENT', 'requireSignature is set but no trusted keys were given', {
      details: { accepted: 'trustedKeys: public keys as KeyObject, PEM text or PEM file paths' },
    });
  }
  const root = await resolveDir(dir);

  const manifestBytes = await readArtifactFile(
    root,
    MANIFEST_FILE,
    options.maxManifestBytes ?? DEFAULT_MAX_MANIFEST_BYTES,
  );
  if (manifestBytes === undefined) {
    throw new OutpostError('ARTIFACT_FILE_MISSING', `${root} is not an artifact: it has no ${MANIFEST_FILE}`, {
      details: { dir: root, path: MANIFEST_FILE },
    });
  }
  const { manifest } = parseManifestBytes(manifestBytes);

  const signatureBytes = await readArtifactFile(root, SIGNATURE_FILE, MAX_SIGNATURE_BYTES);
  let signer: string | undefined;
  if (signatureBytes === undefined) {
    if (requireSignature) {
      throw new OutpostError(
        'ARTIFACT_SIGNATURE_MISSING',
        `${root} has no ${SIGNATURE_FILE} and signatures are required`,
        {
          details: { dir: root, trusted: [...trusted.keys()] },
        },
      );
    }
  } else if (trusted.size > 0) {
    // A present signature is checked whenever it can be, even if not required: a bad one is a sign of tampering.
    signer = verifyManifestSignature(manifestBytes, signatureBytes, trusted);
  } else {
    log.debug({ dir: root }, `${SIGNATURE_FILE} present but no trusted keys given; signature not checked`);
  }

  const mayBeAbsent = options.absentVariants ?? [];
  const variants = variantFiles(manifest, await bundledManifests(root, manifest, mayBeAbsent, options.verdicts));
  const absent = await checkFileSet(root, manifest, signatureBytes !== undefined, variants, mayBeAbsent);
  for (const [path, expected] of Object.entries(manifest.files)) {
    if (!absent.has(path)) await checkFile(root, path, expected, options.verdicts);
  }
  if (options.target !== undefined) checkTarget(manifest, options.target.arch);

  log.info({ dir: root, name: manifest.name, version: manifest.version, signer }, 'artifact verified');
  const absentVariants = variants.filter((v) => absent.has(v.file)).map((v) => v.id);
  const verified = {
    dir: root,
    manifest,
    manifestSha256: manifestDigest(manifestBytes),
    ...(absentVariants.length === 0 ? {} : { absentVariants }),
  };
  return markVerified(signer === undefined ? verified : { ...verified, signer });
}

async function resolveDir(dir: string): Promise<string> {
  let root: string;
  try {
    root = await realpath(dir);
    if (!(await stat(root)).isDirectory()) {
      throw new OutpostError('INVALID_ARGUMENT', `${dir} is not a directory; an artifact is a directory or a .tar.gz`, {
        details: { path: dir },
      });
    }
  } catch (error) {
    throw error instanceof OutpostError ? error : fromFsError(error, dir, 'read');
  }
  return root;
}

/**
 * Reads a small top-level file (manifest.json, manifest.sig) with a size cap; undefined when absent. A symlink is
 * refused rather than followed, like every other path in an artifact.
 */
async function readArtifactFile(root: string, name: string, maxBytes: number): Promise<Buffer | undefined> {
  const path = join(root, name);
  const code = name === MANIFEST_FILE ? 'ARTIFACT_MANIFEST_INVALID' : 'ARTIFACT_SIGNATURE_INVALID';
  let handle;
  try {
    const info = await lstat(path);
    if (info.isSymbolicLink()) {
      throw new OutpostError(
        'ARTIFACT_PATH_ESCAPE',
        `${name} in ${root} is a symlink; artifacts hold only regular files`,
        {
          details: { path: name, dir: root },
        },
      );
    }
    if (!info.isFile() || info.size > maxBytes) {
      const problem = info.isFile()
        ? `is ${info.size} bytes, over the ${maxBytes}-byte limit`
        : 'is not a regular file';
      throw new OutpostError(code, `${name} in ${root} ${problem}`, { details: { path: name, maxBytes } });
    }
    handle = await open(path, constants.O_RDONLY | OPEN_NOFOLLOW);
    // The file's size (+1 to see it grow), not the cap: a 16 MiB buffer per verification is what 500 simulated
    // devices verifying at once turned into gigabytes of garbage (bench/rollouts.ts).
    const buffer = Buffer.alloc(Math.min(info.size, maxBytes) + 1);
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, 0);
    if (bytesRead > info.size) throw new OutpostError(code, `${name} in ${root} grew while being read`);
    return buffer.subarray(0, bytesRead);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error instanceof OutpostError ? error : fromFsError(error, path, 'read');
  } finally {
    await handle?.close();
  }
}

/**
 * The manifests of a pipeline's bundled models that have variants in `mayBeAbsent`, each hashed (against the
 * pipeline's signed manifest) before it is read: they say which files those variants are. Empty for a model artifact.
 */
async function bundledManifests(
  root: string,
  manifest: Manifest,
  mayBeAbsent: readonly string[],
  verdicts: Verdicts | undefined,
): Promise<Map<string, Manifest>> {
  const read = new Map<string, Manifest>();
  for (const model of bundledModels(manifest)) {
    if (variantsOfBundled(mayBeAbsent, model.key).length === 0) continue;
    const expected = manifest.files[model.manifestPath];
    const present = await lstat(join(root, model.manifestPath)).then(
      (info) => info.isFile(),
      () => false,
    );
    if (expected === undefined || !present) {
      throw new OutpostError(
        'ARTIFACT_FILE_MISSING',
        `${root} lacks ${model.manifestPath}, the manifest of bundled model "${model.key}"`,
        { details: { dir: root, missing: [model.manifestPath] } },
      );
    }
    await checkFile(root, model.manifestPath, expected, verdicts);
    read.set(model.key, parseManifestBytes(await readFile(join(root, model.manifestPath))).manifest);
  }
  return read;
}

/**
 * The files on disk must be exactly manifest.json, manifest.sig (if present) and the keys of `files`; the model files
 * of the `mayBeAbsent` variants may be missing while one variant of the same model is whole (and no variant held
 * shares the file). Returns the absent ones.
 */
async function checkFileSet(
  root: string,
  manifest: Manifest,
  signed: boolean,
  variants: readonly VariantFile[],
  mayBeAbsent: readonly string[],
): Promise<ReadonlySet<string>> {
  const onDisk = await listArtifactFiles(root);
  const expected = new Set(Object.keys(manifest.files));
  expected.add(MANIFEST_FILE);
  if (signed) expected.add(SIGNATURE_FILE);
  const unexpected = onDisk.filter((path) => !expected.has(path));
  const present = new Set(onDisk);
  let missing = [...expected].filter((path) => !present.has(path)).sort();
  const absent = new Set<string>();
  if (mayBeAbsent.length > 0) {
    const held = variants.filter((v) => !mayBeAbsent.includes(v.id)).map((v) => v.id);
    const optional = filesNotHeld(variants, held);
    // Per model (the artifact's own, or each bundled one): its variants excused only while one of them is whole.
    const whole = new Set(variants.filter((v) => present.has(v.file)).map((v) => v.model ?? ''));
    for (const v of variants) if (!whole.has(v.model ?? '')) optional.delete(v.file);
    for (const path of missing) if (optional.has(path)) absent.add(path);
    missing = missing.filter((path) => !absent.has(path));
  }
  if (unexpected.length > 0) {
    throw new OutpostError(
      'ARTIFACT_FILE_UNEXPECTED',
      `${root} holds ${unexpected.length === 1 ? 'a file' : 'files'} not covered by ${MANIFEST_FILE}: ${unexpected.map((p) => JSON.stringify(p)).join(', ')}`,
      { details: { dir: root, unexpected, missing } },
    );
  }
  if (missing.length > 0) {
    throw new OutpostError('ARTIFACT_FILE_MISSING', `${root} lacks ${missing.join(', ')}, listed in ${MANIFEST_FILE}`, {
      details: { dir: root, missing },
    });
  }
  return absent;
}

/** Size first (cheap, and a huge file declared small is never read), then sha256 (unless a verdict still holds). */
async function checkFile(
  root: string,
  path: string,
  expected: { sha256: string; bytes: number },
  verdicts: Verdicts | undefined,
): Promise<void> {
  const absolute = join(root, path);
  let info;
  try {
    info = await lstat(absolute, { bigint: true });
  } catch (error) {
    throw fromFsError(error, absolute, 'read');
  }
  const size = Number(info.size);
  if (size === expected.bytes && verdicts?.known(info) === expected.sha256) return;
  const actual = size === expected.bytes ? await sha256File(absolute) : { sha256: undefined, bytes: size };
  if (actual.bytes !== expected.bytes || actual.sha256 !== expected.sha256) {
    const what =
      actual.bytes !== expected.bytes
        ? `is ${actual.bytes} bytes, expected ${expected.bytes}`
        : `has sha256 ${actual.sha256 ?? '?'}, expected ${expected.sha256}`;
    throw new OutpostError('ARTIFACT_HASH_MISMATCH', `${path} in ${root} ${what}`, {
      details: { dir: root, path, expected, actual },
    });
  }
  verdicts?.remember(info, expected.sha256);
}

function checkTarget(manifest: Manifest, hostArch: Exclude<Target['arch'], 'any'>): void {
  const { arch, profile } = manifest.target;
  if (arch !== 'any' && arch !== hostArch) {
    throw new OutpostError(
      'ARTIFACT_TARGET_MISMATCH',
      `artifact ${manifest.name} ${manifest.version} targets ${arch} (${profile}); this host is ${hostArch}, which accepts ${hostArch} or any`,
      { details: { artifact: arch, profile, host: hostArch, accepted: [hostArch, 'any'] } },
    );
  }
}
