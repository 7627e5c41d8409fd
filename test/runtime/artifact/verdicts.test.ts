import { execFileSync } from 'node:child_process';
import { lstat, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { VerdictFile, verifyArtifact, type FileIdentity, type Verdicts } from '../../../runtime/artifact/index.js';
import { tmpDir } from '../../helpers/tmp.js';
import { VARIANT_BYTES, VARIANT_FILE, makeArtifact } from '../../helpers/fake-artifacts.js';

/** A real VerdictFile, counting how many files it let verification skip (not a mock: every call goes through). */
class Counting implements Verdicts {
  hits = 0;
  constructor(readonly inner: VerdictFile) {}
  known(file: FileIdentity): string | undefined {
    const sha = this.inner.known(file);
    if (sha !== undefined) this.hits++;
    return sha;
  }
  remember(file: FileIdentity, sha256: string): void {
    this.inner.remember(file, sha256);
  }
}

async function setup(): Promise<{ dir: string; record: string; key: string; files: number }> {
  const root = await tmpDir();
  const dir = await makeArtifact(root);
  const record = join(root, 'verified.json');
  const key = join(root, 'verified.key');
  const first = new Counting(await VerdictFile.open(record, key));
  const verified = await verifyArtifact(dir, { verdicts: first });
  expect(first.hits).toBe(0); // nothing was known: every file hashed
  await first.inner.save();
  return { dir, record, key, files: Object.keys(verified.manifest.files).length };
}

async function reopened(record: string, key: string): Promise<Counting> {
  return new Counting(await VerdictFile.open(record, key));
}

describe('verification verdicts (a boot re-hashes only what changed)', () => {
  it('skips hashing files unchanged since they were verified, and still checks the manifest', async () => {
    const { dir, record, key, files } = await setup();
    const verdicts = await reopened(record, key);
    await verifyArtifact(dir, { verdicts });
    expect(verdicts.hits).toBe(files);
  });

  it('detects same-size tampering with the mtime restored: ctime moved, so the file is hashed again', async () => {
    const { dir, record, key } = await setup();
    const path = join(dir, VARIANT_FILE);
    const before = await lstat(path, { bigint: true });
    const reference = join(dir, '..', 'times');
    execFileSync('touch', ['-r', path, reference]); // the file's times, to the nanosecond (utimensat)
    const tampered = Buffer.from(VARIANT_BYTES);
    tampered[0] = (tampered[0] ?? 0) ^ 0xff;
    await writeFile(path, tampered);
    execFileSync('touch', ['-r', reference, path]);
    const after = await lstat(path, { bigint: true });
    expect([after.size, after.mtimeNs, after.ino]).toEqual([before.size, before.mtimeNs, before.ino]);
    const verdicts = await reopened(record, key);
    await expect(verifyArtifact(dir, { verdicts })).rejects.toMatchObject({ code: 'ARTIFACT_HASH_MISMATCH' });
  });

  it('detects a file replaced by rename (a new inode), whatever its times', async () => {
    const { dir, record, key } = await setup();
    const path = join(dir, VARIANT_FILE);
    const tampered = Buffer.from(VARIANT_BYTES);
    tampered[1] = (tampered[1] ?? 0) ^ 0xff;
    await writeFile(`${path}.new`, tampered);
    await rename(`${path}.new`, path);
    await expect(verifyArtifact(dir, { verdicts: await reopened(record, key) })).rejects.toMatchObject({
      code: 'ARTIFACT_HASH_MISMATCH',
    });
  });

  it('falls back to full verification when the record is corrupt or missing', async () => {
    const { dir, record, key } = await setup();
    await writeFile(record, '{"version": 1, "entr');
    const corrupt = await reopened(record, key);
    await verifyArtifact(dir, { verdicts: corrupt });
    expect(corrupt.hits).toBe(0);
    const missing = await reopened(join(dir, '..', 'nothing.json'), key);
    await verifyArtifact(dir, { verdicts: missing });
    expect(missing.hits).toBe(0);
  });

  it('re-hashes everything when the device key is damaged, and replaces the key at the next save', async () => {
    const { dir, record, key } = await setup();
    await writeFile(key, 'short');
    const verdicts = await reopened(record, key);
    await verifyArtifact(dir, { verdicts });
    expect(verdicts.hits).toBe(0);
    await verdicts.inner.save();
    expect((await readFile(key)).length).toBe(32);
  });

  it('ignores a record forged without the device key: a tampered file is still caught', async () => {
    const { dir, record, key } = await setup();
    const path = join(dir, VARIANT_FILE);
    const tampered = Buffer.from(VARIANT_BYTES);
    tampered[2] = (tampered[2] ?? 0) ^ 0xff;
    await writeFile(path, tampered);
    // The forger refreshes the entry to the tampered file's new identity but cannot recompute the HMAC.
    const now = await lstat(path, { bigint: true });
    const forged = JSON.parse(await readFile(record, 'utf8')) as {
      entries: Record<string, { size: string; mtimeNs: string; ctimeNs: string; sha256: string }>;
    };
    const entry = forged.entries[`${now.dev}:${now.ino}`];
    if (entry === undefined) throw new Error('the record has no entry for the variant');
    forged.entries[`${now.dev}:${now.ino}`] = {
      ...entry,
      mtimeNs: String(now.mtimeNs),
      ctimeNs: String(now.ctimeNs),
    };
    await writeFile(record, JSON.stringify(forged));
    const verdicts = await reopened(record, key);
    await expect(verifyArtifact(dir, { verdicts })).rejects.toMatchObject({ code: 'ARTIFACT_HASH_MISMATCH' });
    expect(verdicts.hits).toBe(0);
  });

  it('never lets a verdict vouch for a different expected hash (a new manifest)', async () => {
    const { record, key } = await setup();
    const verdicts = await VerdictFile.open(record, key);
    const other = await makeArtifact(await tmpDir(), {});
    const counting = new Counting(verdicts);
    await verifyArtifact(other, { verdicts: counting });
    expect(counting.hits).toBe(0); // other files, other inodes: all hashed
  });
});
