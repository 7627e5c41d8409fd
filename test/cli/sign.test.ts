import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { generateSigningKeys, verifyArtifact } from '../../runtime/artifact/index.js';
import { runCli } from '../helpers/cli.js';
import { tmpDir } from '../helpers/tmp.js';
import { makeArtifact } from '../helpers/fake-artifacts.js';

describe('outpost sign', () => {
  it('signs an artifact directory with --sign-key, changing only manifest.sig, and says what it replaced', async () => {
    const dir = await tmpDir();
    const artifact = await makeArtifact(dir);
    const keys = join(dir, 'keys');
    expect((await runCli(['keygen', '-o', keys])).code).toBe(0);
    const manifest = await readFile(join(artifact, 'manifest.json'));
    const first = await runCli(['sign', artifact, '--sign-key', join(keys, 'outpost.key')]);
    expect(first.code).toBe(0);
    expect(first.stdout).toMatch(/^signed .* with key [0-9a-f]{16} \(was unsigned\)\n$/);
    expect(await readFile(join(artifact, 'manifest.json'))).toEqual(manifest);
    await verifyArtifact(artifact, { trustedKeys: [join(keys, 'outpost.pub')] });

    const other = generateSigningKeys();
    const again = await runCli(['sign', artifact, '--sign-key', join(keys, 'outpost.key'), '--json']);
    const result = JSON.parse(again.stdout) as { keyId: string; previousKeyId: string };
    expect(result.previousKeyId).toBe(result.keyId);
    expect(result.keyId).not.toBe(other.keyId);
  });

  it('fails in one line on a missing --sign-key or a file that is not an artifact', async () => {
    const dir = await tmpDir();
    const missing = await runCli(['sign', await makeArtifact(dir)]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(
      /^outpost: required option '--sign-key <key>' not specified .*\[INVALID_ARGUMENT\]\n$/,
    );
    const keys = join(dir, 'keys');
    await runCli(['keygen', '-o', keys]);
    const bad = await runCli(['sign', join(keys, 'outpost.pub'), '--sign-key', join(keys, 'outpost.key')]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^outpost: .* \[ARTIFACT_ARCHIVE_INVALID\]\n$/);
  });
});
