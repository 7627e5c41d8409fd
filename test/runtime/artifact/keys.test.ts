import { createPublicKey, generateKeyPairSync } from 'node:crypto';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  PRIVATE_KEY_FILE,
  PUBLIC_KEY_FILE,
  generateSigningKeys,
  keyId,
  loadPrivateKey,
  loadPublicKey,
  writeSigningKeys,
} from '../../../runtime/artifact/index.js';
import { tmpDir } from '../../helpers/tmp.js';

describe('signing keys', () => {
  it('generates ed25519 PEM keys whose id is the first 16 hex chars of sha256(SPKI DER)', async () => {
    const keys = generateSigningKeys();
    expect(keys.privateKeyPem).toContain('-----BEGIN PRIVATE KEY-----');
    expect(keys.publicKeyPem).toContain('-----BEGIN PUBLIC KEY-----');
    expect(keys.keyId).toMatch(/^[0-9a-f]{16}$/);
    const privateKey = await loadPrivateKey(keys.privateKeyPem);
    const publicKey = await loadPublicKey(keys.publicKeyPem);
    expect(keyId(privateKey)).toBe(keys.keyId);
    expect(keyId(publicKey)).toBe(keys.keyId);
    expect(keyId(createPublicKey(privateKey))).toBe(keys.keyId);
  });

  it('writes outpost.key with mode 0600 and outpost.pub, loadable from their paths', async () => {
    const dir = await tmpDir();
    const written = await writeSigningKeys(dir);
    expect(written.privateKeyPath).toBe(join(dir, PRIVATE_KEY_FILE));
    expect(written.publicKeyPath).toBe(join(dir, PUBLIC_KEY_FILE));
    if (process.platform !== 'win32') expect((await stat(written.privateKeyPath)).mode & 0o777).toBe(0o600);
    expect(keyId(await loadPrivateKey(written.privateKeyPath))).toBe(written.keyId);
    expect(keyId(await loadPublicKey(written.publicKeyPath))).toBe(written.keyId);
  });

  it('refuses to overwrite existing keys unless asked, and leaves them intact', async () => {
    const dir = await tmpDir();
    const first = await writeSigningKeys(dir);
    const before = await readFile(first.privateKeyPath, 'utf8');
    await expect(writeSigningKeys(dir)).rejects.toMatchObject({
      code: 'OUTPUT_UNWRITABLE',
      message: expect.stringContaining(PRIVATE_KEY_FILE) as unknown,
    });
    expect(await readFile(first.privateKeyPath, 'utf8')).toBe(before);
    const second = await writeSigningKeys(dir, { overwrite: true });
    expect(second.keyId).not.toBe(first.keyId);
    expect(keyId(await loadPublicKey(second.publicKeyPath))).toBe(second.keyId);
  });

  it('rejects garbage key material as KEY_INVALID naming the file', async () => {
    const dir = await tmpDir();
    const path = join(dir, 'bad.pem');
    await writeFile(path, '-----BEGIN PRIVATE KEY-----\nnot base64 at all\n-----END PRIVATE KEY-----\n');
    await expect(loadPrivateKey(path)).rejects.toMatchObject({
      code: 'KEY_INVALID',
      message: expect.stringContaining(path) as unknown,
    });
    await writeFile(path, 'hello');
    await expect(loadPublicKey(path)).rejects.toMatchObject({
      code: 'KEY_INVALID',
      message: expect.stringContaining(path) as unknown,
    });
  });

  it('refuses non-ed25519 keys', async () => {
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const pem = rsa.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    await expect(loadPrivateKey(pem)).rejects.toMatchObject({
      code: 'KEY_INVALID',
      message: expect.stringContaining('rsa') as unknown,
    });
    await expect(loadPublicKey(rsa.publicKey)).rejects.toMatchObject({ code: 'KEY_INVALID' });
  });

  it('refuses a private key where a public (trusted) key is expected', async () => {
    const keys = generateSigningKeys();
    await expect(loadPublicKey(keys.privateKeyPem)).rejects.toMatchObject({ code: 'KEY_INVALID' });
  });

  it('reports a missing key file as FILE_NOT_FOUND', async () => {
    const dir = await tmpDir();
    await expect(loadPrivateKey(join(dir, 'nope.key'))).rejects.toMatchObject({ code: 'FILE_NOT_FOUND' });
  });
});
