import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { OUTPOST_VERSION } from '../../runtime/version.js';
import { ROOT } from '../helpers/models.js';

/** The README's "Running outpost from a clone", each way it names, as a user types it (after `npm run build`). */
const COMMAND_TIMEOUT_MS = 60_000; // ms
const BUILT = join(ROOT, 'dist', 'cli', 'main.js');

function run(command: string, args: readonly string[], env: NodeJS.ProcessEnv = {}) {
  return new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    execFile(
      command,
      [...args],
      { cwd: ROOT, timeout: COMMAND_TIMEOUT_MS, env: { ...process.env, ...env } },
      (e, stdout, stderr) =>
        resolve({ code: e === null ? 0 : typeof e.code === 'number' ? e.code : 1, stdout, stderr }),
    );
  });
}

describe('outpost from a clone', () => {
  it("is the package's bin, the built CLI", async () => {
    const pkg = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { bin?: Record<string, string> };
    expect(pkg.bin).toEqual({ outpost: './dist/cli/main.js' });
  });

  it('runs as `npx --no-install outpost` and, after `npm link`, as `outpost`', async (context) => {
    context.skip(!existsSync(BUILT), 'dist/ is not built (npm run build)');
    const npx = await run('npx', ['--no-install', 'outpost', '--version']);
    expect(npx.code, npx.stderr).toBe(0);
    expect(npx.stdout.trim()).toBe(OUTPOST_VERSION);
    // npm link into a private prefix, so the machine's global packages are not touched.
    const prefix = await mkdtemp(join(tmpdir(), 'outpost-link-'));
    try {
      const link = await run('npm', ['link', '--no-audit', '--no-fund'], { npm_config_prefix: prefix });
      expect(link.code, link.stderr).toBe(0);
      const linked = await run(join(prefix, 'bin', 'outpost'), ['--version']);
      expect(linked.stdout.trim()).toBe(OUTPOST_VERSION);
    } finally {
      await rm(prefix, { recursive: true, force: true });
    }
  });
});
