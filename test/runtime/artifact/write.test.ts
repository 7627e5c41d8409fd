import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  MANIFEST_FILE,
  SIGNATURE_FILE,
  generateSigningKeys,
  manifestSchema,
  sha256Bytes,
  sha256File,
  verifyArtifact,
  writeArtifact,
} from '../../../runtime/artifact/index.js';
import { tmpDir } from '../../helpers/tmp.js';
import {
  VARIANT_BYTES,
  VARIANT_FILE,
  listTree,
  makeArtifact,
  sampleDraft,
  sampleFiles,
} from '../../helpers/fake-artifacts.js';

describe('writeArtifact', () => {
  it('writes every file, measures hashes and sizes, and produces a manifest a device accepts', async () => {
    const root = await tmpDir();
    const dir = join(root, 'out');
    const written = await writeArtifact(dir, { manifest: sampleDraft(), files: sampleFiles() });
    expect(written.signer).toBeUndefined();
    expect(await listTree(dir)).toEqual([
      'labels.txt',
      MANIFEST_FILE,
      'test-vectors',
      'test-vectors/case0',
      'test-vectors/case0/input.npy',
      'test-vectors/case0/output.npy',
      'variants',
      VARIANT_FILE,
    ]);
    const manifest = manifestSchema.parse(JSON.parse(await readFile(join(dir, MANIFEST_FILE), 'utf8')));
    expect(manifest.files[VARIANT_FILE]).toEqual({
      sha256: sha256Bytes(VARIANT_BYTES),
      bytes: VARIANT_BYTES.byteLength,
    });
    expect(manifest.variants[0]).toMatchObject({ sha256: sha256Bytes(VARIANT_BYTES), bytes: VARIANT_BYTES.byteLength });
    expect(Object.keys(manifest.files)).toHaveLength(4);
    expect(manifest.selection).toBe('fixed'); // defaults are written out, so the file says what it means
    expect(manifest.schemaVersion).toBe(1);
    expect(await readdir(root)).toEqual(['out']); // no staging directory left beside it
    const verified = await verifyArtifact(dir);
    expect(verified.manifest).toEqual(manifest);
  });

  it('writes manifest.json pretty-printed with sorted keys and a trailing newline', async () => {
    const dir = await makeArtifact(await tmpDir());
    const text = await readFile(join(dir, MANIFEST_FILE), 'utf8');
    expect(text.endsWith('}\n')).toBe(true);
    expect(text.startsWith('{\n  "createdAt": ')).toBe(true);
  });

  it('copies source files from disk and hashes what it wrote', async () => {
    const root = await tmpDir();
    const source = join(root, 'model.onnx');
    await writeFile(source, VARIANT_BYTES);
    const files = sampleFiles().map((f) => (f.path === VARIANT_FILE ? { path: f.path, from: source } : f));
    const written = await writeArtifact(join(root, 'out'), { manifest: sampleDraft(), files });
    expect(await sha256File(join(root, 'out', VARIANT_FILE))).toEqual({
      sha256: written.manifest.variants[0]?.sha256,
      bytes: VARIANT_BYTES.byteLength,
    });
  });

  it('signs when given a key, and the signature verifies under it', async () => {
    const root = await tmpDir();
    const keys = generateSigningKeys();
    const dir = await makeArtifact(root, { signingKey: keys.privateKeyPem });
    expect(await readFile(join(dir, SIGNATURE_FILE), 'utf8')).toContain(keys.keyId);
    const verified = await verifyArtifact(dir, { trustedKeys: [keys.publicKeyPem] });
    expect(verified.signer).toBe(keys.keyId);
  });

  it('leaves neither outDir nor temp files when a source file is missing mid-way', async () => {
    const root = await tmpDir();
    const files = [
      ...sampleFiles().slice(0, 2),
      { path: 'extra.bin', from: join(root, 'does-not-exist') },
      ...sampleFiles().slice(2),
    ];
    await expect(writeArtifact(join(root, 'out'), { manifest: sampleDraft(), files })).rejects.toMatchObject({
      code: 'FILE_NOT_FOUND',
      message: expect.stringContaining('does-not-exist') as unknown,
    });
    expect(await listTree(root)).toEqual([]);
  });

  it('refuses an existing outDir unless overwrite, and then replaces it whole', async () => {
    const root = await tmpDir();
    const dir = join(root, 'out');
    await mkdir(dir);
    await writeFile(join(dir, 'old.txt'), 'old');
    await expect(writeArtifact(dir, { manifest: sampleDraft(), files: sampleFiles() })).rejects.toMatchObject({
      code: 'OUTPUT_UNWRITABLE',
      message: expect.stringContaining(dir) as unknown,
    });
    expect(await listTree(root)).toEqual(['out', 'out/old.txt']);

    await writeArtifact(dir, { manifest: sampleDraft(), files: sampleFiles(), overwrite: true });
    expect(await listTree(dir)).not.toContain('old.txt');
    expect(await readdir(root)).toEqual(['out']); // the old copy moved aside was removed
    await verifyArtifact(dir);
  });

  it('validates the manifest as a device would, naming the field', async () => {
    const root = await tmpDir();
    const manifest = { ...sampleDraft(), name: 'has spaces' };
    await expect(writeArtifact(join(root, 'out'), { manifest, files: sampleFiles() })).rejects.toMatchObject({
      code: 'ARTIFACT_MANIFEST_INVALID',
      message: expect.stringContaining('name') as unknown,
    });
    expect(await listTree(root)).toEqual([]);
  });

  it('refuses an unsupported schemaVersion', async () => {
    const root = await tmpDir();
    const manifest = { ...sampleDraft(), schemaVersion: 99 };
    await expect(writeArtifact(join(root, 'out'), { manifest, files: sampleFiles() })).rejects.toMatchObject({
      code: 'ARTIFACT_SCHEMA_UNSUPPORTED',
    });
    expect(await listTree(root)).toEqual([]);
  });

  it.each([
    ['escapes with ..', '../evil.onnx'],
    ['is absolute', '/tmp/evil.onnx'],
    ['is reserved', MANIFEST_FILE],
  ])('refuses a file path that %s', async (_what, path) => {
    const root = await tmpDir();
    const files = [...sampleFiles(), { path, from: new Uint8Array([1]) }];
    await expect(writeArtifact(join(root, 'out'), { manifest: sampleDraft(), files })).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
    });
    expect(await listTree(root)).toEqual([]);
  });

  it('refuses a variant whose file is not among the files', async () => {
    const root = await tmpDir();
    const files = sampleFiles().filter((f) => f.path !== VARIANT_FILE);
    await expect(writeArtifact(join(root, 'out'), { manifest: sampleDraft(), files })).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
      message: expect.stringContaining('variants[0].file') as unknown,
    });
    expect(await listTree(root)).toEqual([]);
  });
});
