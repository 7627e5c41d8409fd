import { createHash, sign, verify, type KeyObject } from 'node:crypto';
import * as z from 'zod';
import { OutpostError, messageOf } from '../errors.js';
import { canonicalJson } from './canonical.js';
import { keyId } from './keys.js';
import { MANIFEST_FILE, SIGNATURE_FILE } from './manifest.js';

/**
 * `manifest.sig`: `{ "algorithm": "ed25519", "keyId": "<16 hex>", "signature": "<base64>" }`, an ed25519 signature
 * (RFC 8032, pure Ed25519, no pre-hash) over the UTF-8 bytes of `canonicalJson(JSON.parse(manifest.json))`.
 * `keyId` only selects which trusted key to check against; it is not itself trusted.
 */
export const SIGNATURE_ALGORITHM = 'ed25519';
const ED25519_SIGNATURE_BYTES = 64; // RFC 8032 §5.1.6
/** Invalid UTF-8 is an error, not U+FFFD: two different files must never decode to the same signed content. */
const UTF8 = new TextDecoder('utf-8', { fatal: true });

export const signatureFileSchema = z.object({
  algorithm: z.literal(SIGNATURE_ALGORITHM),
  keyId: z.string().regex(/^[0-9a-f]{16}$/, '16 lowercase hex characters'),
  signature: z.base64(),
});
export type SignatureFile = z.infer<typeof signatureFileSchema>;

/** The bytes a signature covers: the canonical form of the manifest's JSON value, whatever its whitespace. */
export function signedBytes(manifest: Uint8Array | string | Readonly<Record<string, unknown>>): Buffer {
  const value = typeof manifest === 'string' || manifest instanceof Uint8Array ? parseManifestJson(manifest) : manifest;
  return Buffer.from(canonicalJson(value), 'utf8');
}

/**
 * The manifest's identity: hex sha256 of the bytes a signature covers. Two artifacts with the same digest have the
 * same manifest, so the same files (it lists every file's hash); re-indenting manifest.json does not change it.
 */
export function manifestDigest(manifest: Uint8Array | string | Readonly<Record<string, unknown>>): string {
  return createHash('sha256').update(signedBytes(manifest)).digest('hex');
}

/** The content of `manifest.sig` for this manifest (file bytes, a JSON string, or the manifest object). */
export function signManifest(
  manifest: Uint8Array | string | Readonly<Record<string, unknown>>,
  privateKey: KeyObject,
): string {
  if (privateKey.type !== 'private' || privateKey.asymmetricKeyType !== SIGNATURE_ALGORITHM) {
    throw new OutpostError(
      'KEY_INVALID',
      `the signing key is a ${privateKey.asymmetricKeyType ?? 'symmetric'} ${privateKey.type} key, expected an ${SIGNATURE_ALGORITHM} private key`,
    );
  }
  const file: SignatureFile = {
    algorithm: SIGNATURE_ALGORITHM,
    keyId: keyId(privateKey),
    // Ed25519 hashes internally; node:crypto requires `null` as the digest for it.
    signature: sign(null, signedBytes(manifest), privateKey).toString('base64'),
  };
  return `${JSON.stringify(file, null, 2)}\n`;
}

/**
 * Checks `manifest.sig` against the manifest and returns the key id that signed it. Errors, in order: a malformed
 * signature file → ARTIFACT_SIGNATURE_INVALID; a key id outside `trustedKeys` → ARTIFACT_SIGNATURE_UNTRUSTED (listing
 * the trusted ids); a signature that does not verify under that key → ARTIFACT_SIGNATURE_INVALID.
 */
export function verifyManifestSignature(
  manifestBytes: Uint8Array | string,
  signatureBytes: Uint8Array | string,
  trustedKeys: readonly KeyObject[] | ReadonlyMap<string, KeyObject>,
): string {
  const sig = parseSignatureFile(signatureBytes);
  const trusted: ReadonlyMap<string, KeyObject> =
    trustedKeys instanceof Map
      ? trustedKeys
      : new Map((trustedKeys as readonly KeyObject[]).map((key) => [keyId(key), key]));
  const key = trusted.get(sig.keyId);
  if (key === undefined) {
    const ids = [...trusted.keys()];
    throw new OutpostError(
      'ARTIFACT_SIGNATURE_UNTRUSTED',
      `${SIGNATURE_FILE} is signed by key ${sig.keyId}, which is not trusted; trusted keys: ${ids.length ? ids.join(', ') : '(none)'}`,
      { details: { keyId: sig.keyId, trusted: ids } },
    );
  }
  const signature = Buffer.from(sig.signature, 'base64');
  const valid =
    signature.length === ED25519_SIGNATURE_BYTES && verify(null, signedBytes(manifestBytes), key, signature);
  if (!valid) {
    throw new OutpostError(
      'ARTIFACT_SIGNATURE_INVALID',
      `${SIGNATURE_FILE} does not verify under key ${sig.keyId}: ${MANIFEST_FILE} was changed after signing, or the signature is corrupt`,
      { details: { keyId: sig.keyId } },
    );
  }
  return sig.keyId;
}

export function parseSignatureFile(bytes: Uint8Array | string): SignatureFile {
  let raw: unknown;
  try {
    raw = JSON.parse(typeof bytes === 'string' ? bytes : UTF8.decode(bytes));
  } catch (error) {
    throw new OutpostError('ARTIFACT_SIGNATURE_INVALID', `${SIGNATURE_FILE} is not JSON: ${messageOf(error)}`, {
      cause: error,
    });
  }
  const parsed = signatureFileSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue?.path.length ? issue.path.join('.') : '(root)';
    throw new OutpostError(
      'ARTIFACT_SIGNATURE_INVALID',
      `${SIGNATURE_FILE}: ${where}: ${issue?.message ?? 'invalid'}; expected {"algorithm":"${SIGNATURE_ALGORITHM}","keyId","signature"}`,
      { details: { path: where } },
    );
  }
  return parsed.data;
}

function parseManifestJson(bytes: Uint8Array | string): unknown {
  try {
    return JSON.parse(typeof bytes === 'string' ? bytes : UTF8.decode(bytes));
  } catch (error) {
    throw new OutpostError('ARTIFACT_MANIFEST_INVALID', `${MANIFEST_FILE} is not JSON: ${messageOf(error)}`, {
      cause: error,
    });
  }
}
