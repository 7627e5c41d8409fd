import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { keyId, loadPrivateKey, loadPublicKey } from '../../runtime/artifact/keys.js';
import { runCli } from '../helpers/cli.js';
import { tmpDir } from '../helpers/tmp.js';

describe('outpost keygen', () => {
  it('writes a 0600 private key and its public key, and prints the key id and paths', async () => {
    const dir = join(await tmpDir(), 'keys'); // created by keygen
    const { code, stdout } = await runCli(['keygen', '-o', dir]);
    expect(code).toBe(0);
    const [priv, pub] = [join(dir, 'outpost.key'), join(dir, 'outpost.pub')];
    expect((await stat(priv)).mode & 0o777).toBe(0o600);
    const id = keyId(await loadPublicKey(pub));
    expect(keyId(await loadPrivateKey(priv))).toBe(id);
    expect(stdout).toContain(`key id       ${id}`);
    expect(stdout).toContain(priv);
    expect(stdout).toContain(pub);
  });

  it('refuses to replace a key pair without --force, in one line, and replaces it with --force', async () => {
    const dir = await tmpDir();
    const first = await runCli(['keygen', '-o', dir, '--json']);
    const before = await readFile(join(dir, 'outpost.key'), 'utf8');
    const refused = await runCli(['keygen', '-o', dir]);
    expect(refused.code).toBe(1);
    expect(refused.stderr.trim()).toMatch(
      /^outpost: .*outpost\.key already exists; .*--force.* \[OUTPUT_UNWRITABLE\]$/,
    );
    expect(await readFile(join(dir, 'outpost.key'), 'utf8')).toBe(before);
    const forced = await runCli(['keygen', '-o', dir, '--force', '--json']);
    expect(forced.code).toBe(0);
    const [a, b] = [first, forced].map((r) => JSON.parse(r.stdout) as { keyId: string; privateKeyPath: string });
    expect(b?.keyId).not.toBe(a?.keyId);
    expect(b?.keyId).toBe(keyId(await loadPublicKey(join(dir, 'outpost.pub'))));
  });

  it('requires -o', async () => {
    const { code, stderr } = await runCli(['keygen']);
    expect(code).toBe(1);
    expect(stderr).toContain("required option '-o, --output <dir>' not specified");
  });
});
