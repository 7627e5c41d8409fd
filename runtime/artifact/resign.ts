import { mkdtemp, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createPublicKey, randomBytes, type KeyObject } from 'node:crypto';
import { OutpostError, fromFsError, isOutpostError } from '../errors.js';
import { logger } from '../log.js';
import { removeQuietly, syncDir } from './fs-atomic.js';
import { keyId, loadPrivateKey } from './keys.js';
import { MANIFEST_FILE, SIGNATURE_FILE } from './manifest.js';
import { packArtifact } from './pack.js';
import { parseSignatureFile, signManifest } from './signature.js';
import { unpackArtifact } from './unpack.js';
import { verifyArtifact } from './verify.js';

/**
 * `outpost sign`: (re-)signs an existing artifact, a directory or a `.tar.gz`. Only `manifest.sig` changes: the
 * manifest and every file stay byte for byte. The artifact is verified first (schema, file set, every sha256), so a
 * signature never vouches for files that do not match their manifest; the old signature, if any, is replaced
 * whoever made it. A directory gets the new `manifest.sig` by temp file + rename; an archive is unpacked, signed and
 * repacked (deterministically) into a temp file renamed over the original.
 */
const log = logger('artifact');

export interface SignResult {
  readonly path: string;
  readonly keyId: string;
  /** The key id the replaced signature named (not verified), or undefined when the artifact was unsigned. */
  readonly previousKeyId: string | undefined;
}

async function signDir(dir: string, key: KeyObject): Promise<Omit<SignResult, 'path'>> {
  const artifact = await verifyArtifact(dir, { requireSignature: false });
  const manifestBytes = await readFile(join(artifact.dir, MANIFEST_FILE));
  let previousKeyId: string | undefined;
  try {
    previousKeyId = parseSignatureFile(await readFile(join(artifact.dir, SIGNATURE_FILE))).keyId;
  } catch (error) {
    // Absent (unsigned) or unreadable: either way it is about to be replaced.
    if (!isOutpostError(error) && (error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  const target = join(artifact.dir, SIGNATURE_FILE);
  const temp = join(artifact.dir, `.${SIGNATURE_FILE}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    await writeFile(temp, signManifest(manifestBytes, key), { flag: 'wx', mode: 0o644, flush: true });
    await rename(temp, target);
    await syncDir(artifact.dir);
  } catch (error) {
    await removeQuietly(temp);
    throw error instanceof OutpostError ? error : fromFsError(error, target, 'write');
  }
  // The new signature must verify under the key's own public half, or nothing was signed.
  await verifyArtifact(artifact.dir, { trustedKeys: [createPublicKey(key)] });
  return { keyId: keyId(key), previousKeyId };
}

export async function signArtifact(path: string, signingKey: string | KeyObject): Promise<SignResult> {
  const key = await loadPrivateKey(signingKey);
  const info = await stat(path).catch((error: unknown) => {
    throw fromFsError(error, path, 'read');
  });
  let result: Omit<SignResult, 'path'>;
  if (info.isDirectory()) {
    result = await signDir(path, key);
  } else {
    const work = await mkdtemp(join(tmpdir(), 'outpost-sign-'));
    try {
      const dir = join(work, 'artifact');
      await unpackArtifact(path, dir).catch((error: unknown) => {
        throw isOutpostError(error)
          ? error
          : new OutpostError('ARTIFACT_ARCHIVE_INVALID', `${path} is neither an artifact directory nor a .tar.gz`, {
              cause: error,
            });
      });
      result = await signDir(dir, key);
      await packArtifact(dir, path, { overwrite: true });
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  }
  log.info({ path, keyId: result.keyId, previous: result.previousKeyId }, 'artifact signed');
  return { path, ...result };
}
