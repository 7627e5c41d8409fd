import type { KeyObject } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  generateSigningKeys,
  loadPrivateKey,
  loadPublicKey,
  parseSignatureFile,
  signManifest,
  verifyManifestSignature,
} from '../../../runtime/artifact/index.js';
import { isOutpostError, type ErrorCode } from '../../../runtime/errors.js';

async function keyPair(): Promise<{ privateKey: KeyObject; publicKey: KeyObject; keyId: string }> {
  const keys = generateSigningKeys();
  return {
    privateKey: await loadPrivateKey(keys.privateKeyPem),
    publicKey: await loadPublicKey(keys.publicKeyPem),
    keyId: keys.keyId,
  };
}

function codeOf(fn: () => unknown): ErrorCode | undefined {
  try {
    fn();
    return undefined;
  } catch (error) {
    return isOutpostError(error) ? error.code : undefined;
  }
}

describe('manifest signatures', () => {
  const manifest = '{\n  "name": "m",\n  "version": "1.0.0"\n}\n';

  it('signs and verifies, returning the signer key id', async () => {
    const { privateKey, publicKey, keyId } = await keyPair();
    const sig = signManifest(manifest, privateKey);
    expect(parseSignatureFile(sig)).toMatchObject({ algorithm: 'ed25519', keyId });
    expect(verifyManifestSignature(manifest, sig, [publicKey])).toBe(keyId);
  });

  it('signs content, not formatting: bytes, string and object forms agree', async () => {
    const { privateKey, publicKey } = await keyPair();
    const sig = signManifest({ version: '1.0.0', name: 'm' }, privateKey);
    expect(verifyManifestSignature(Buffer.from('{"name":"m","version":"1.0.0"}'), sig, [publicKey])).toBeTypeOf(
      'string',
    );
    expect(verifyManifestSignature(manifest, sig, [publicKey])).toBeTypeOf('string');
  });

  it('rejects changed content as ARTIFACT_SIGNATURE_INVALID', async () => {
    const { privateKey, publicKey } = await keyPair();
    const sig = signManifest(manifest, privateKey);
    expect(codeOf(() => verifyManifestSignature(manifest.replace('1.0.0', '1.0.1'), sig, [publicKey]))).toBe(
      'ARTIFACT_SIGNATURE_INVALID',
    );
  });

  it('rejects a key outside the trusted set as ARTIFACT_SIGNATURE_UNTRUSTED, listing the trusted ids', async () => {
    const signer = await keyPair();
    const trusted = await keyPair();
    const sig = signManifest(manifest, signer.privateKey);
    try {
      verifyManifestSignature(manifest, sig, [trusted.publicKey]);
      expect.unreachable();
    } catch (error) {
      expect(isOutpostError(error, 'ARTIFACT_SIGNATURE_UNTRUSTED')).toBe(true);
      expect((error as Error).message).toContain(trusted.keyId);
      expect((error as Error).message).toContain(signer.keyId);
    }
  });

  it('rejects a forged signature that claims a trusted key id as ARTIFACT_SIGNATURE_INVALID', async () => {
    const trusted = await keyPair();
    const forger = await keyPair();
    const forged = JSON.parse(signManifest(manifest, forger.privateKey)) as Record<string, string>;
    forged.keyId = trusted.keyId;
    expect(codeOf(() => verifyManifestSignature(manifest, JSON.stringify(forged), [trusted.publicKey]))).toBe(
      'ARTIFACT_SIGNATURE_INVALID',
    );
  });

  it.each([
    ['not JSON', 'garbage'],
    ['another algorithm', '{"algorithm":"rsa","keyId":"0123456789abcdef","signature":"AAAA"}'],
    ['a short signature', '{"algorithm":"ed25519","keyId":"0123456789abcdef","signature":"AAAA"}'],
  ])('rejects a malformed manifest.sig (%s) as ARTIFACT_SIGNATURE_INVALID', async (_what, sig) => {
    const { publicKey, keyId } = await keyPair();
    const text = sig.replace('0123456789abcdef', keyId);
    expect(codeOf(() => verifyManifestSignature(manifest, text, [publicKey]))).toBe('ARTIFACT_SIGNATURE_INVALID');
  });
});
