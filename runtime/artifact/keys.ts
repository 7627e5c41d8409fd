import {
  KeyObject,
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  randomBytes,
} from 'node:crypto';
import { chmod, link, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { OutpostError, fromFsError, messageOf } from '../errors.js';

/**
 * Artifact signing keys: ed25519 (RFC 8032), private keys as PKCS#8 PEM and public keys as SPKI PEM, the formats
 * `openssl genpkey -algorithm ed25519` writes, so keys can be made and inspected without Outpost.
 */
export const PRIVATE_KEY_FILE = 'outpost.key';
export const PUBLIC_KEY_FILE = 'outpost.pub';
const KEY_ALGORITHM = 'ed25519';
const KEY_ID_HEX_CHARS = 16; // 64 bits of sha256(SPKI DER): names a key in messages and manifest.sig, not a secret

export interface SigningKeys {
  privateKeyPem: string;
  publicKeyPem: string;
  keyId: string;
}

export interface WrittenSigningKeys {
  privateKeyPath: string;
  publicKeyPath: string;
  keyId: string;
}

export function generateSigningKeys(): SigningKeys {
  const { privateKey, publicKey } = generateKeyPairSync(KEY_ALGORITHM);
  return {
    privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    keyId: keyId(publicKey),
  };
}

/**
 * Writes `outpost.key` (mode 0600) and `outpost.pub` into `dir`. Refuses to replace an existing key unless
 * `overwrite`: a lost signing key cannot be recovered, and every device trusting it would have to be re-provisioned.
 */
export async function writeSigningKeys(
  dir: string,
  options: { overwrite?: boolean } = {},
): Promise<WrittenSigningKeys> {
  const keys = generateSigningKeys();
  const privateKeyPath = resolve(dir, PRIVATE_KEY_FILE);
  const publicKeyPath = resolve(dir, PUBLIC_KEY_FILE);
  try {
    await mkdir(dir, { recursive: true });
  } catch (error) {
    throw fromFsError(error, dir, 'write');
  }
  const overwrite = options.overwrite ?? false;
  await publishFile(privateKeyPath, keys.privateKeyPem, 0o600, overwrite);
  try {
    await publishFile(publicKeyPath, keys.publicKeyPem, 0o644, overwrite);
  } catch (error) {
    // Never leave a private key whose public half was not written: nobody could ever be told to trust it.
    await rm(privateKeyPath, { force: true });
    throw error;
  }
  return { privateKeyPath, publicKeyPath, keyId: keys.keyId };
}

/**
 * Writes a temp file, then publishes it under `path`: by link(), which fails if `path` exists, so two concurrent
 * `keygen`s cannot both win; or by rename() when replacing is allowed. Either way no reader sees a partial key.
 */
async function publishFile(path: string, content: string, mode: number, overwrite: boolean): Promise<void> {
  const temp = `${path}.tmp-${randomBytes(6).toString('hex')}`;
  try {
    await writeFile(temp, content, { mode, flag: 'wx', flush: true });
    await chmod(temp, mode); // the umask may have narrowed it; 0600 must not have been widened, and cannot be
    if (overwrite) {
      await rename(temp, path);
    } else {
      await link(temp, path);
    }
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') {
      throw new OutpostError('OUTPUT_UNWRITABLE', `${path} already exists; refusing to replace a signing key`, {
        cause: error,
        details: { path },
      });
    }
    throw fromFsError(error, path, 'write');
  } finally {
    await rm(temp, { force: true });
  }
}

/** A private key from a PEM string, a PEM file, or a KeyObject; only ed25519 is accepted. */
export async function loadPrivateKey(pathOrPem: string | KeyObject): Promise<KeyObject> {
  if (pathOrPem instanceof KeyObject) return requireEd25519(pathOrPem, 'private', 'the given KeyObject');
  const { pem, source } = await readPem(pathOrPem);
  let key: KeyObject;
  try {
    key = createPrivateKey(pem);
  } catch (error) {
    throw keyInvalid(source, `not a readable unencrypted PKCS#8 private key (${messageOf(error)})`, error);
  }
  return requireEd25519(key, 'private', source);
}

/**
 * A public key from a PEM string, a PEM file, or a KeyObject. A private key is refused rather than silently reduced
 * to its public half: a trust store holding private keys is a leak waiting to happen.
 */
export async function loadPublicKey(pathOrPem: string | KeyObject): Promise<KeyObject> {
  if (pathOrPem instanceof KeyObject) return requireEd25519(pathOrPem, 'public', 'the given KeyObject');
  const { pem, source } = await readPem(pathOrPem);
  if (pem.includes('PRIVATE KEY-----')) {
    throw keyInvalid(source, `is a private key; give the public key (${PUBLIC_KEY_FILE}) instead`);
  }
  let key: KeyObject;
  try {
    key = createPublicKey(pem);
  } catch (error) {
    throw keyInvalid(source, `not a readable SPKI public key (${messageOf(error)})`, error);
  }
  return requireEd25519(key, 'public', source);
}

/** First 16 hex chars of sha256 over the SPKI DER of the public key (a private key is reduced to its public half). */
export function keyId(key: KeyObject): string {
  const publicKey = key.type === 'private' ? createPublicKey(key) : key;
  if (publicKey.type !== 'public')
    throw keyInvalid('the given KeyObject', `is a ${key.type} key, not an asymmetric one`);
  const der = publicKey.export({ type: 'spki', format: 'der' });
  return createHash('sha256').update(der).digest('hex').slice(0, KEY_ID_HEX_CHARS);
}

async function readPem(pathOrPem: string): Promise<{ pem: string; source: string }> {
  if (pathOrPem.includes('-----BEGIN ')) return { pem: pathOrPem, source: 'the given PEM' };
  const path = resolve(pathOrPem);
  try {
    return { pem: await readFile(path, 'utf8'), source: path };
  } catch (error) {
    throw fromFsError(error, path, 'read');
  }
}

function requireEd25519(key: KeyObject, type: 'private' | 'public', source: string): KeyObject {
  if (key.type !== type) throw keyInvalid(source, `is a ${key.type} key, expected a ${type} key`);
  if (key.asymmetricKeyType !== KEY_ALGORITHM) {
    throw keyInvalid(source, `is a ${key.asymmetricKeyType ?? 'unknown'} key; only ${KEY_ALGORITHM} keys are accepted`);
  }
  return key;
}

function keyInvalid(source: string, problem: string, cause?: unknown): OutpostError {
  return new OutpostError('KEY_INVALID', `${source}: ${problem}`, {
    cause,
    details: { source, accepted: `${KEY_ALGORITHM} keys, PKCS#8 PEM (private) or SPKI PEM (public)` },
  });
}

/** Loads every trusted key and indexes it by key id. */
export async function loadTrustedKeys(keys: readonly (KeyObject | string)[]): Promise<Map<string, KeyObject>> {
  const trusted = new Map<string, KeyObject>();
  for (const entry of keys) {
    const key = await loadPublicKey(entry);
    trusted.set(keyId(key), key);
  }
  return trusted;
}
