import { execFileSync } from 'node:child_process';
import { appendFile, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import {
  MANIFEST_FILE,
  SIGNATURE_FILE,
  artifactFilePath,
  generateSigningKeys,
  loadPublicKey,
  manifestDigest,
  signManifest,
  loadPrivateKey,
  variantPath,
  verifyArtifact,
  writeSigningKeys,
  type VerifiedArtifact,
} from '../../../runtime/artifact/index.js';
import { tmpDir } from '../../helpers/tmp.js';
import { VARIANT_FILE, makeArtifact, sampleDraft } from '../../helpers/fake-artifacts.js';

async function editManifest(dir: string, edit: (manifest: Record<string, unknown>) => void): Promise<void> {
  const path = join(dir, MANIFEST_FILE);
  const manifest = JSON.parse(await readFile(path, 'utf8')) as Record<string, unknown>;
  edit(manifest);
  await writeFile(path, JSON.stringify(manifest, null, 2));
}

function firstVariant(manifest: Record<string, unknown>): Record<string, unknown> {
  const [variant] = manifest.variants as Record<string, unknown>[];
  if (variant === undefined) throw new Error('the sample manifest has a variant');
  return variant;
}

async function signedArtifact(): Promise<{ dir: string; keys: ReturnType<typeof generateSigningKeys> }> {
  const keys = generateSigningKeys();
  const dir = await makeArtifact(await tmpDir(), { signingKey: keys.privateKeyPem });
  return { dir, keys };
}

describe('verifyArtifact: accepts', () => {
  it('an unsigned artifact when no signature is required', async () => {
    const dir = await makeArtifact(await tmpDir());
    const verified = await verifyArtifact(dir);
    expect(verified.manifest.name).toBe('tiny-classifier');
    expect(verified.signer).toBeUndefined();
  });

  it('a signed artifact, with trusted keys given as PEM, path or KeyObject', async () => {
    const { dir, keys } = await signedArtifact();
    const keyDir = await tmpDir();
    const other = await writeSigningKeys(keyDir);
    for (const trusted of [keys.publicKeyPem, await loadPublicKey(keys.publicKeyPem)]) {
      const verified = await verifyArtifact(dir, { trustedKeys: [other.publicKeyPath, trusted] });
      expect(verified.signer).toBe(keys.keyId);
    }
  });

  it('a manifest re-formatted after signing (whitespace, key order): the signature covers content', async () => {
    const { dir, keys } = await signedArtifact();
    const path = join(dir, MANIFEST_FILE);
    const manifest = JSON.parse(await readFile(path, 'utf8')) as Record<string, unknown>;
    const before = (await verifyArtifact(dir)).manifestSha256;
    const reordered = Object.fromEntries(Object.entries(manifest).reverse());
    await writeFile(path, `\t${JSON.stringify(reordered, null, 4).replaceAll('\n', '\r\n')}  `);
    const verified = await verifyArtifact(dir, { trustedKeys: [keys.publicKeyPem] });
    expect(verified.signer).toBe(keys.keyId);
    // The manifest's identity is its content too: the same digest before and after re-formatting.
    expect(verified.manifestSha256).toBe(before);
    expect(verified.manifestSha256).toBe(manifestDigest(manifest));
    expect(manifestDigest({ ...manifest, description: 'another build' })).not.toBe(before);
  });

  it('a target of "any" on every host, and a matching arch', async () => {
    const root = await tmpDir();
    const any = await makeArtifact(root, {
      name: 'any',
      manifest: { ...sampleDraft(), target: { profile: 'any', arch: 'any' } },
    });
    await verifyArtifact(any, { target: { arch: 'arm64' } });
    await verifyArtifact(await makeArtifact(root), { target: { arch: 'x86_64' } });
  });
  it('a signed artifact, reading manifest and signature into buffers of their size, not of the 16 MiB cap', async () => {
    // 500 simulated devices verifying at once made gigabytes of garbage of a cap-sized buffer each (bench/rollouts.ts).
    const { dir, keys } = await signedArtifact();
    const alloc = vi.spyOn(Buffer, 'alloc');
    try {
      await verifyArtifact(dir, { trustedKeys: [keys.publicKeyPem] });
      const largest = Math.max(0, ...alloc.mock.calls.map(([size]) => size));
      expect(largest).toBeLessThan(1024 * 1024);
    } finally {
      alloc.mockRestore();
    }
  });
});

describe('verifyArtifact: refuses', () => {
  it('a variant with one byte changed: ARTIFACT_HASH_MISMATCH naming file, expected and actual', async () => {
    const dir = await makeArtifact(await tmpDir());
    const path = join(dir, VARIANT_FILE);
    const bytes = await readFile(path);
    bytes[3] = (bytes[3] ?? 0) ^ 0x01;
    await writeFile(path, bytes);
    await expect(verifyArtifact(dir)).rejects.toMatchObject({
      code: 'ARTIFACT_HASH_MISMATCH',
      details: {
        path: VARIANT_FILE,
        expected: { bytes: bytes.length },
        actual: { bytes: bytes.length },
      },
      message: expect.stringContaining(VARIANT_FILE) as unknown,
    });
  });

  it('a file whose size changed: ARTIFACT_HASH_MISMATCH', async () => {
    const dir = await makeArtifact(await tmpDir());
    await appendFile(join(dir, 'labels.txt'), 'bird\n');
    await expect(verifyArtifact(dir)).rejects.toMatchObject({
      code: 'ARTIFACT_HASH_MISMATCH',
      message: expect.stringContaining('labels.txt') as unknown,
    });
  });

  it('a deleted file: ARTIFACT_FILE_MISSING', async () => {
    const dir = await makeArtifact(await tmpDir());
    await rm(join(dir, 'test-vectors/case0/output.npy'));
    await expect(verifyArtifact(dir)).rejects.toMatchObject({
      code: 'ARTIFACT_FILE_MISSING',
      message: expect.stringContaining('test-vectors/case0/output.npy') as unknown,
    });
  });

  it('an added file: ARTIFACT_FILE_UNEXPECTED', async () => {
    const dir = await makeArtifact(await tmpDir());
    await writeFile(join(dir, 'variants', 'sneaky.onnx'), 'x');
    await expect(verifyArtifact(dir)).rejects.toMatchObject({
      code: 'ARTIFACT_FILE_UNEXPECTED',
      message: expect.stringContaining('variants/sneaky.onnx') as unknown,
    });
  });

  it('a directory without manifest.json: ARTIFACT_FILE_MISSING', async () => {
    const dir = await makeArtifact(await tmpDir());
    await rm(join(dir, MANIFEST_FILE));
    await expect(verifyArtifact(dir)).rejects.toMatchObject({ code: 'ARTIFACT_FILE_MISSING' });
  });

  it('schemaVersion 99: ARTIFACT_SCHEMA_UNSUPPORTED listing the supported versions', async () => {
    const dir = await makeArtifact(await tmpDir());
    await editManifest(dir, (m) => (m.schemaVersion = 99));
    await expect(verifyArtifact(dir)).rejects.toMatchObject({
      code: 'ARTIFACT_SCHEMA_UNSUPPORTED',
      details: { schemaVersion: 99, supported: [1] },
    });
  });

  it('malformed JSON: ARTIFACT_MANIFEST_INVALID', async () => {
    const dir = await makeArtifact(await tmpDir());
    await writeFile(join(dir, MANIFEST_FILE), '{"schemaVersion": 1,');
    await expect(verifyArtifact(dir)).rejects.toMatchObject({ code: 'ARTIFACT_MANIFEST_INVALID' });
  });

  it('a schema violation: ARTIFACT_MANIFEST_INVALID naming the field path and the zod message', async () => {
    const dir = await makeArtifact(await tmpDir());
    await editManifest(dir, (m) => (firstVariant(m).precision = 'fp64'));
    await expect(verifyArtifact(dir)).rejects.toMatchObject({
      code: 'ARTIFACT_MANIFEST_INVALID',
      message: expect.stringMatching(/variants\[0\]\.precision: .*fp32/) as unknown,
    });
  });

  it('a variant whose sha256 disagrees with files: ARTIFACT_MANIFEST_INVALID', async () => {
    const dir = await makeArtifact(await tmpDir());
    await editManifest(dir, (m) => (firstVariant(m).sha256 = 'a'.repeat(64)));
    await expect(verifyArtifact(dir)).rejects.toMatchObject({
      code: 'ARTIFACT_MANIFEST_INVALID',
      message: expect.stringContaining('variants[0].sha256') as unknown,
    });
  });

  it('a variant whose file is not in files: ARTIFACT_MANIFEST_INVALID', async () => {
    const dir = await makeArtifact(await tmpDir());
    await editManifest(dir, (m) => (firstVariant(m).file = 'variants/other.onnx'));
    await expect(verifyArtifact(dir)).rejects.toMatchObject({
      code: 'ARTIFACT_MANIFEST_INVALID',
      message: expect.stringContaining('variants[0].file') as unknown,
    });
  });

  it('an unsigned artifact when signatures are required: ARTIFACT_SIGNATURE_MISSING', async () => {
    const dir = await makeArtifact(await tmpDir());
    await expect(verifyArtifact(dir, { trustedKeys: [generateSigningKeys().publicKeyPem] })).rejects.toMatchObject({
      code: 'ARTIFACT_SIGNATURE_MISSING',
    });
  });

  it('a signature by a key not trusted: ARTIFACT_SIGNATURE_UNTRUSTED listing trusted key ids', async () => {
    const { dir } = await signedArtifact();
    const trusted = generateSigningKeys();
    await expect(verifyArtifact(dir, { trustedKeys: [trusted.publicKeyPem] })).rejects.toMatchObject({
      code: 'ARTIFACT_SIGNATURE_UNTRUSTED',
      message: expect.stringContaining(trusted.keyId) as unknown,
    });
  });

  it('a manifest edited after signing: ARTIFACT_SIGNATURE_INVALID', async () => {
    const { dir, keys } = await signedArtifact();
    await editManifest(dir, (m) => (m.version = '1.0.1'));
    await expect(verifyArtifact(dir, { trustedKeys: [keys.publicKeyPem] })).rejects.toMatchObject({
      code: 'ARTIFACT_SIGNATURE_INVALID',
    });
  });

  it('a bad signature even when signatures are not required', async () => {
    const { dir, keys } = await signedArtifact();
    await editManifest(dir, (m) => (m.version = '1.0.1'));
    const options = { trustedKeys: [keys.publicKeyPem], requireSignature: false };
    await expect(verifyArtifact(dir, options)).rejects.toMatchObject({ code: 'ARTIFACT_SIGNATURE_INVALID' });
  });

  it('a re-signed manifest after tampering with a file still fails on the hash', async () => {
    const { dir, keys } = await signedArtifact();
    await writeFile(join(dir, 'labels.txt'), 'evil\ndog\n');
    const manifestText = await readFile(join(dir, MANIFEST_FILE));
    await writeFile(join(dir, SIGNATURE_FILE), signManifest(manifestText, await loadPrivateKey(keys.privateKeyPem)));
    await expect(verifyArtifact(dir, { trustedKeys: [keys.publicKeyPem] })).rejects.toMatchObject({
      code: 'ARTIFACT_HASH_MISMATCH',
    });
  });

  it('a symlink inside the directory, even one pointing inside: ARTIFACT_PATH_ESCAPE', async () => {
    const dir = await makeArtifact(await tmpDir());
    await rm(join(dir, 'labels.txt'));
    await symlink('/etc/hostname', join(dir, 'labels.txt'));
    await expect(verifyArtifact(dir)).rejects.toMatchObject({
      code: 'ARTIFACT_PATH_ESCAPE',
      message: expect.stringContaining('labels.txt') as unknown,
    });
    const other = await makeArtifact(await tmpDir());
    await symlink('labels.txt', join(other, 'variants', 'alias.onnx'));
    await expect(verifyArtifact(other)).rejects.toMatchObject({ code: 'ARTIFACT_PATH_ESCAPE' });
  });

  it('manifest.json as a symlink: ARTIFACT_PATH_ESCAPE', async () => {
    const root = await tmpDir();
    const dir = await makeArtifact(root);
    await writeFile(join(root, 'elsewhere.json'), await readFile(join(dir, MANIFEST_FILE)));
    await rm(join(dir, MANIFEST_FILE));
    await symlink(join(root, 'elsewhere.json'), join(dir, MANIFEST_FILE));
    await expect(verifyArtifact(dir)).rejects.toMatchObject({ code: 'ARTIFACT_PATH_ESCAPE' });
  });

  it.skipIf(process.platform === 'win32')(
    'a FIFO inside the directory: ARTIFACT_FILE_UNEXPECTED, without blocking',
    async () => {
      const dir = await makeArtifact(await tmpDir());
      execFileSync('mkfifo', [join(dir, 'pipe')]); // Node has no mkfifo(3); coreutils does
      await expect(verifyArtifact(dir)).rejects.toMatchObject({ code: 'ARTIFACT_FILE_UNEXPECTED' });
    },
  );

  it('the wrong target: ARTIFACT_TARGET_MISMATCH naming both architectures', async () => {
    const dir = await makeArtifact(await tmpDir());
    const refused = verifyArtifact(dir, { target: { arch: 'arm64' } });
    await expect(refused).rejects.toMatchObject({ code: 'ARTIFACT_TARGET_MISMATCH' });
    await expect(refused).rejects.toThrow('x86_64');
    await expect(refused).rejects.toThrow('arm64');
  });

  it('requireSignature without trusted keys, as a usage error', async () => {
    const dir = await makeArtifact(await tmpDir());
    await expect(verifyArtifact(dir, { requireSignature: true })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
  });
});

describe('verified artifacts', () => {
  it('are the only way to file paths, and cannot be edited after verification', async () => {
    const dir = await makeArtifact(await tmpDir());
    const verified = await verifyArtifact(dir);
    expect(variantPath(verified, 'fp32')).toBe(join(verified.dir, VARIANT_FILE));
    expect(artifactFilePath(verified, 'labels.txt')).toBe(join(verified.dir, 'labels.txt'));
    await expect(Promise.resolve().then(() => variantPath(verified, 'int8'))).rejects.toMatchObject({
      code: 'VARIANT_NOT_FOUND',
    });
    await expect(Promise.resolve().then(() => artifactFilePath(verified, '../etc/passwd'))).rejects.toMatchObject({
      code: 'ARTIFACT_FILE_MISSING',
    });
    const forged: VerifiedArtifact = {
      dir: verified.dir,
      manifest: verified.manifest,
      manifestSha256: verified.manifestSha256,
    };
    await expect(Promise.resolve().then(() => variantPath(forged, 'fp32'))).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
    });
    expect(() => {
      (verified.manifest.variants[0] as { file: string }).file = '../../etc/passwd';
    }).toThrow(TypeError);
  });
});
