import { randomBytes } from 'node:crypto';
import { mkdir, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { create as tarCreate, list as tarList, type ReadEntry } from 'tar';
import { describe, expect, it } from 'vitest';
import {
  MANIFEST_FILE,
  SIGNATURE_FILE,
  generateSigningKeys,
  openArtifact,
  packArtifact,
  sha256Bytes,
  unpackArtifact,
  variantPath,
  verifyArtifact,
} from '../../../runtime/artifact/index.js';
import { tmpDir } from '../../helpers/tmp.js';
import {
  VARIANT_BYTES,
  VARIANT_FILE,
  listTree,
  makeArtifact,
  packedArtifact,
  rawTarGz,
  sampleFiles,
} from '../../helpers/fake-artifacts.js';

const body = Buffer.from('payload');

describe('packArtifact / unpackArtifact', () => {
  it('round-trips: pack → unpack → verify, signature included', async () => {
    const { tgz, keys } = await packedArtifact({ signed: true });
    const dest = join(await tmpDir(), 'unpacked');
    await unpackArtifact(tgz, dest);
    const verified = await verifyArtifact(dest, { trustedKeys: [keys.publicKeyPem] });
    expect(verified.signer).toBe(keys.keyId);
    expect(await readFile(variantPath(verified, 'fp32'))).toEqual(Buffer.from(VARIANT_BYTES));
  });

  it('streams multi-megabyte files through pack and unpack intact', async () => {
    const root = await tmpDir();
    const big = randomBytes(3 * 1024 * 1024 + 123); // several read chunks and tar blocks, not block-aligned
    const files = sampleFiles().map((f) => (f.path === VARIANT_FILE ? { path: f.path, from: big } : f));
    const dir = await makeArtifact(root, { files });
    await packArtifact(dir, join(root, 'big.tgz'));
    const opened = await openArtifact(join(root, 'big.tgz'), { workDir: root });
    expect(sha256Bytes(await readFile(variantPath(opened, 'fp32')))).toBe(sha256Bytes(big));
    await opened.dispose();
  });

  it('packs deterministically: same artifact content → same bytes, whatever the files’ times and modes', async () => {
    const first = await packedArtifact();
    await new Promise((r) => setTimeout(r, 20)); // different mtimes for the second copy's files
    const second = await packedArtifact();
    const [a, b] = [await readFile(first.tgz), await readFile(second.tgz)];
    expect(sha256Bytes(a)).toBe(sha256Bytes(b));
    expect(a.equals(b)).toBe(true);
  });

  it('writes sorted, portable entries: files only, mode 0644, owner 0, mtime 0, gzip OS "unknown"', async () => {
    const { tgz } = await packedArtifact({ signed: true });
    const entries: ReadEntry[] = [];
    await tarList({ file: tgz, onReadEntry: (e) => entries.push(e) });
    const names = entries.map((e) => e.path);
    expect(names).toEqual([...names].sort());
    expect(names).toEqual(expect.arrayContaining([MANIFEST_FILE, SIGNATURE_FILE, VARIANT_FILE]));
    for (const e of entries) {
      expect({ type: e.type, mode: e.mode, uid: e.uid, gid: e.gid, uname: e.uname, gname: e.gname }).toEqual({
        type: 'File',
        mode: 0o644,
        uid: 0,
        gid: 0,
        uname: '',
        gname: '',
      });
      expect(e.mtime?.getTime()).toBe(0);
    }
    expect((await readFile(tgz))[9]).toBe(255);
  });

  it('returns the archive digest and refuses to overwrite unless asked', async () => {
    const root = await tmpDir();
    const dir = await makeArtifact(root);
    const tgz = join(root, 'a.tgz');
    const result = await packArtifact(dir, tgz);
    expect(result).toEqual({ path: tgz, sha256: sha256Bytes(await readFile(tgz)), bytes: (await stat(tgz)).size });
    await expect(packArtifact(dir, tgz)).rejects.toMatchObject({ code: 'OUTPUT_UNWRITABLE' });
    await packArtifact(dir, tgz, { overwrite: true });
  });

  it('refuses to pack an artifact that does not verify, leaving no output', async () => {
    const root = await tmpDir();
    const dir = await makeArtifact(root);
    await writeFile(join(dir, VARIANT_FILE), 'tampered');
    await expect(packArtifact(dir, join(root, 'a.tgz'))).rejects.toMatchObject({ code: 'ARTIFACT_HASH_MISMATCH' });
    expect(await readdir(root)).toEqual(['artifact']);
  });

  it('accepts archives made by other tar tools ("./" prefixes, directory entries)', async () => {
    const root = await tmpDir();
    const dir = await makeArtifact(root);
    const tgz = join(root, 'other.tgz');
    await tarCreate({ gzip: true, file: tgz, cwd: dir }, ['.']);
    const dest = join(root, 'dest');
    await unpackArtifact(tgz, dest);
    await verifyArtifact(dest);
  });

  it('refuses an existing destination', async () => {
    const { tgz } = await packedArtifact();
    const dest = await tmpDir();
    await expect(unpackArtifact(tgz, dest)).rejects.toMatchObject({ code: 'OUTPUT_UNWRITABLE' });
  });
});

describe('openArtifact', () => {
  it('unpacks a .tar.gz into a private work dir, verifies it, and dispose() removes it', async () => {
    const { tgz, keys } = await packedArtifact({ signed: true });
    const workDir = await tmpDir();
    const opened = await openArtifact(tgz, { workDir, trustedKeys: [keys.publicKeyPem], target: { arch: 'x86_64' } });
    expect(opened.signer).toBe(keys.keyId);
    expect(await readFile(variantPath(opened, 'fp32'))).toEqual(Buffer.from(VARIANT_BYTES));
    expect(await readdir(workDir)).toHaveLength(1);
    await opened.dispose();
    await opened.dispose();
    expect(await readdir(workDir)).toEqual([]);
  });

  it('opens a directory in place, with a no-op dispose', async () => {
    const dir = await makeArtifact(await tmpDir());
    const opened = await openArtifact(dir);
    expect(variantPath(opened, 'fp32')).toBe(join(opened.dir, VARIANT_FILE));
    await opened.dispose();
    await stat(join(dir, MANIFEST_FILE));
  });

  it('leaves nothing behind when the unpacked artifact fails verification', async () => {
    const { tgz } = await packedArtifact();
    const workDir = await tmpDir();
    await expect(
      openArtifact(tgz, { workDir, trustedKeys: [generateSigningKeys().publicKeyPem] }),
    ).rejects.toMatchObject({ code: 'ARTIFACT_SIGNATURE_MISSING' });
    expect(await readdir(workDir)).toEqual([]);
  });

  it('leaves nothing behind when the archive is malicious', async () => {
    const root = await tmpDir();
    const tgz = join(root, 'evil.tgz');
    await writeFile(tgz, rawTarGz([{ path: '../x', body }]));
    const workDir = join(root, 'work');
    await mkdir(workDir);
    await expect(openArtifact(tgz, { workDir })).rejects.toMatchObject({ code: 'ARTIFACT_PATH_ESCAPE' });
    expect(await listTree(root)).toEqual(['evil.tgz', 'work']);
  });

  it('refuses a file that is neither a directory nor a .tar.gz', async () => {
    const root = await tmpDir();
    await writeFile(join(root, 'model.zip'), 'x');
    await expect(openArtifact(join(root, 'model.zip'))).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await rm(join(root, 'model.zip'));
    await expect(openArtifact(join(root, 'model.zip'))).rejects.toMatchObject({ code: 'FILE_NOT_FOUND' });
  });
});
