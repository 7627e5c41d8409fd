import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  SIGNATURE_FILE,
  generateSigningKeys,
  openArtifact,
  signArtifact,
  verifyArtifact,
} from '../../../runtime/artifact/index.js';
import { tmpDir } from '../../helpers/tmp.js';
import { VARIANT_FILE, makeArtifact, packedArtifact } from '../../helpers/fake-artifacts.js';

describe('signArtifact (outpost sign)', () => {
  it('signs an unsigned directory: only manifest.sig appears, and it verifies under the new key', async () => {
    const dir = await makeArtifact(await tmpDir());
    const manifest = await readFile(join(dir, 'manifest.json'));
    const keys = generateSigningKeys();
    const result = await signArtifact(dir, keys.privateKeyPem);
    expect(result).toMatchObject({ keyId: keys.keyId, previousKeyId: undefined });
    expect(await readFile(join(dir, 'manifest.json'))).toEqual(manifest);
    expect((await verifyArtifact(dir, { trustedKeys: [keys.publicKeyPem] })).signer).toBe(keys.keyId);
  });

  it('re-signs a signed directory: the old key is no longer trusted, the new one is', async () => {
    const old = generateSigningKeys();
    const dir = await makeArtifact(await tmpDir(), { signingKey: old.privateKeyPem });
    const next = generateSigningKeys();
    expect((await signArtifact(dir, next.privateKeyPem)).previousKeyId).toBe(old.keyId);
    await expect(verifyArtifact(dir, { trustedKeys: [old.publicKeyPem] })).rejects.toMatchObject({
      code: 'ARTIFACT_SIGNATURE_UNTRUSTED',
    });
    expect((await verifyArtifact(dir, { trustedKeys: [next.publicKeyPem] })).signer).toBe(next.keyId);
  });

  it('re-signs a .tar.gz in place; its other entries are unchanged', async () => {
    const { tgz, keys: old } = await packedArtifact({ signed: true });
    const next = generateSigningKeys();
    expect((await signArtifact(tgz, next.privateKeyPem)).previousKeyId).toBe(old.keyId);
    const opened = await openArtifact(tgz, { trustedKeys: [next.publicKeyPem] });
    try {
      expect(opened.signer).toBe(next.keyId);
      expect(opened.manifest.name).toBe('tiny-classifier');
    } finally {
      await opened.dispose();
    }
  });

  it('refuses to vouch for files that do not match the manifest, and leaves the signature alone', async () => {
    const keys = generateSigningKeys();
    const dir = await makeArtifact(await tmpDir(), { signingKey: keys.privateKeyPem });
    const before = await readFile(join(dir, SIGNATURE_FILE));
    await writeFile(join(dir, VARIANT_FILE), 'tampered');
    await expect(signArtifact(dir, generateSigningKeys().privateKeyPem)).rejects.toMatchObject({
      code: 'ARTIFACT_HASH_MISMATCH',
    });
    expect(await readFile(join(dir, SIGNATURE_FILE))).toEqual(before);
  });

  it('refuses a key that is not an ed25519 private key, and a path that is not an artifact', async () => {
    const root = await tmpDir();
    const dir = await makeArtifact(root);
    await expect(signArtifact(dir, generateSigningKeys().publicKeyPem)).rejects.toMatchObject({ code: 'KEY_INVALID' });
    await writeFile(join(root, 'not.tar.gz'), 'hello');
    await expect(signArtifact(join(root, 'not.tar.gz'), generateSigningKeys().privateKeyPem)).rejects.toMatchObject({
      code: 'ARTIFACT_ARCHIVE_INVALID',
    });
    await expect(signArtifact(join(root, 'missing'), generateSigningKeys().privateKeyPem)).rejects.toMatchObject({
      code: 'FILE_NOT_FOUND',
    });
  });
});
