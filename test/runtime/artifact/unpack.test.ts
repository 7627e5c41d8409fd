import { readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { unpackArtifact } from '../../../runtime/artifact/index.js';
import { tmpDir } from '../../helpers/tmp.js';
import { listTree, packedArtifact, rawTarGz, type RawEntry } from '../../helpers/fake-artifacts.js';

/**
 * Hostile archives, crafted block by block. Each must be refused with its code, and leave nothing anywhere: not at
 * the destination, not beside it (staging), not where the entry pointed.
 */
async function expectRefused(
  entries: RawEntry[],
  code: 'ARTIFACT_PATH_ESCAPE' | 'ARTIFACT_ARCHIVE_INVALID',
  mentioning = '',
): Promise<void> {
  const archiveDir = await tmpDir();
  const root = await tmpDir();
  const tgz = join(archiveDir, 'evil.tar.gz');
  await writeFile(tgz, rawTarGz(entries));
  await expect(unpackArtifact(tgz, join(root, 'dest'))).rejects.toMatchObject({
    code,
    message: expect.stringContaining(mentioning) as unknown,
  });
  expect(await listTree(root)).toEqual([]);
  expect(await readdir(archiveDir)).toEqual(['evil.tar.gz']);
}

const body = Buffer.from('payload');

describe('unpackArtifact refuses, writing nothing anywhere', () => {
  it('a ".." entry', async () => {
    await expectRefused(
      [
        { path: 'ok.txt', body },
        { path: '../escaped.txt', body },
      ],
      'ARTIFACT_PATH_ESCAPE',
      '../escaped.txt',
    );
  });

  it('a ".." hidden in the middle of a path', async () => {
    await expectRefused([{ path: 'variants/../../escaped.txt', body }], 'ARTIFACT_PATH_ESCAPE');
  });

  it('an absolute path', async () => {
    const outside = join(await tmpDir(), 'absolute.txt');
    await expectRefused([{ path: outside, body }], 'ARTIFACT_PATH_ESCAPE');
    await expect(stat(outside)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('a symlink pointing out, and the file written through it', async () => {
    await expectRefused(
      [
        { path: 'link', type: 'SymbolicLink', linkpath: '/etc' },
        { path: 'link/evil.conf', body },
      ],
      'ARTIFACT_PATH_ESCAPE',
      'SymbolicLink',
    );
  });

  it('a symlink even pointing inside', async () => {
    await expectRefused(
      [
        { path: 'a.txt', body },
        { path: 'b.txt', type: 'SymbolicLink', linkpath: 'a.txt' },
      ],
      'ARTIFACT_PATH_ESCAPE',
    );
  });

  it('a hardlink', async () => {
    await expectRefused([{ path: 'hard', type: 'Link', linkpath: '../../../etc/passwd' }], 'ARTIFACT_PATH_ESCAPE');
  });

  it.each(['CharacterDevice', 'BlockDevice', 'FIFO'] as const)('a %s entry', async (type) => {
    await expectRefused([{ path: 'dev', type }], 'ARTIFACT_PATH_ESCAPE');
  });

  it('a backslash in a name', async () => {
    await expectRefused([{ path: '..\\..\\evil.txt', body }], 'ARTIFACT_PATH_ESCAPE');
  });

  it('a ".." path smuggled in a pax header', async () => {
    await expectRefused([{ path: '../../pax-escaped.txt', body, viaPax: true }], 'ARTIFACT_PATH_ESCAPE');
  });

  it('a name longer than 255 bytes', async () => {
    await expectRefused([{ path: `${'d/'.repeat(100)}${'x'.repeat(60)}`, body, viaPax: true }], 'ARTIFACT_PATH_ESCAPE');
  });

  it('a control character in a name', async () => {
    await expectRefused([{ path: 'evil\nname.txt', body }], 'ARTIFACT_PATH_ESCAPE');
  });

  it('a duplicate entry (tar would let the second win)', async () => {
    await expectRefused(
      [
        { path: 'a.txt', body },
        { path: 'a.txt', body: Buffer.from('other') },
      ],
      'ARTIFACT_ARCHIVE_INVALID',
    );
  });

  it('an unknown entry type', async () => {
    await expectRefused([{ path: 'sparse', type: 'SparseFile', body }], 'ARTIFACT_ARCHIVE_INVALID');
  });

  it('more bytes than maxBytes (zip-bomb guard)', async () => {
    const root = await tmpDir();
    const tgz = join(root, 'big.tgz');
    await writeFile(tgz, rawTarGz([{ path: 'zeros.bin', body: Buffer.alloc(64 * 1024) }]));
    await expect(unpackArtifact(tgz, join(root, 'dest'), { maxBytes: 1024 })).rejects.toMatchObject({
      code: 'ARTIFACT_ARCHIVE_INVALID',
    });
    expect(await readdir(root)).toEqual(['big.tgz']);
  });

  it('more entries than maxEntries', async () => {
    const root = await tmpDir();
    const tgz = join(root, 'many.tgz');
    await writeFile(tgz, rawTarGz(Array.from({ length: 5 }, (_, i) => ({ path: `f${i}`, body }))));
    await expect(unpackArtifact(tgz, join(root, 'dest'), { maxEntries: 3 })).rejects.toMatchObject({
      code: 'ARTIFACT_ARCHIVE_INVALID',
    });
    expect(await readdir(root)).toEqual(['many.tgz']);
  });

  it('a truncated .tar.gz', async () => {
    const { tgz } = await packedArtifact();
    const bytes = await readFile(tgz);
    await writeFile(tgz, bytes.subarray(0, Math.floor(bytes.length / 2)));
    const root = await tmpDir();
    await expect(unpackArtifact(tgz, join(root, 'dest'))).rejects.toMatchObject({ code: 'ARTIFACT_ARCHIVE_INVALID' });
    expect(await readdir(root)).toEqual([]);
  });

  it('a tar truncated inside a valid gzip stream', async () => {
    const root = await tmpDir();
    const tgz = join(root, 'cut.tgz');
    const full = rawTarGz([{ path: 'a.bin', body: Buffer.alloc(4096, 7) }], { endBlocks: false });
    await writeFile(tgz, gzipSync(gunzipSync(full).subarray(0, 512 + 1000)));
    await expect(unpackArtifact(tgz, join(root, 'dest'))).rejects.toMatchObject({ code: 'ARTIFACT_ARCHIVE_INVALID' });
    expect(await readdir(root)).toEqual(['cut.tgz']);
  });

  it('a file that is not gzip, or gzip that is not tar', async () => {
    const root = await tmpDir();
    await writeFile(join(root, 'plain.tgz'), 'just text, not an archive');
    await expect(unpackArtifact(join(root, 'plain.tgz'), join(root, 'dest'))).rejects.toMatchObject({
      code: 'ARTIFACT_ARCHIVE_INVALID',
    });
    await writeFile(join(root, 'text.tgz'), gzipSync(Buffer.from('x'.repeat(2000))));
    await expect(unpackArtifact(join(root, 'text.tgz'), join(root, 'dest'))).rejects.toMatchObject({
      code: 'ARTIFACT_ARCHIVE_INVALID',
    });
    expect((await readdir(root)).sort()).toEqual(['plain.tgz', 'text.tgz']);
  });
});
