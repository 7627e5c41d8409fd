import { execFile } from 'node:child_process';
import { copyFile, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../helpers/models.js';

/**
 * What `npm ci` on a fresh clone does with install scripts (README, "Installing: what runs at npm ci"): the policy
 * is package.json's `allowScripts` (npm >= 11.16), not an `.npmrc` key npm does not know (npm 11 warns about those on
 * every command, npm 12 refuses them). The always-on checks are the two computations behind npm ci's warnings, run
 * on this checkout: loading the project's config, and matching installed install scripts against the policy.
 * OUTPOST_TEST_FRESH_INSTALL=1 adds a real `npm ci` of a temporary copy from the local npm cache (~30 s).
 */
const NPM_TIMEOUT_MS = 60_000; // ms for a local npm command
const FRESH_INSTALL_TIMEOUT_MS = 300_000; // ms for a whole offline npm ci
/** Packages whose install scripts put native binaries in place: they must run. */
const NATIVE = Object.freeze(['aws-crt', 'esbuild', 'unrs-resolver', 'better-sqlite3']);
/** onnxruntime-node's script downloads CUDA libraries from outside the npm registry: it must not. */
const DENIED = Object.freeze(['onnxruntime-node']);
const POLICY_NPM = [11, 16] as const; // npm version that reads allowScripts

interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

function npm(
  args: readonly string[],
  cwd: string,
  env: NodeJS.ProcessEnv = {},
  timeout = NPM_TIMEOUT_MS,
): Promise<Run> {
  return new Promise((resolve) => {
    execFile('npm', [...args], { cwd, timeout, env: { ...process.env, ...env } }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : 1;
      resolve({ code, stdout, stderr });
    });
  });
}

async function npmVersion(): Promise<readonly number[]> {
  const { stdout } = await npm(['--version'], ROOT);
  return stdout.trim().split('.').map(Number);
}

const readsPolicy = (version: readonly number[]) =>
  (version[0] ?? 0) > POLICY_NPM[0] || ((version[0] ?? 0) === POLICY_NPM[0] && (version[1] ?? 0) >= POLICY_NPM[1]);

describe('install scripts', () => {
  it('are allowed for the native packages and denied for the CUDA download, in package.json', async () => {
    const pkg = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as {
      allowScripts?: Record<string, boolean>;
    };
    for (const name of NATIVE) expect(pkg.allowScripts?.[name], name).toBe(true);
    for (const name of DENIED) expect(pkg.allowScripts?.[name], name).toBe(false);
  });

  it('leave npm nothing to warn about: no unknown project config, no install script outside the policy', async (context) => {
    const version = await npmVersion();
    context.skip(!readsPolicy(version), `npm ${version.join('.')} predates allowScripts (npm 11.16)`);
    // Any npm command loads the project's .npmrc and package.json: an unknown key warns here as in npm ci.
    const config = await npm(['config', 'get', 'allow-scripts'], ROOT);
    expect(config.code, config.stderr).toBe(0);
    expect(config.stderr).not.toMatch(/warn/i);
    // The list npm ci ends with ("N packages have install scripts not yet covered by allowScripts").
    const scripts = await npm(['install-scripts', 'ls'], ROOT);
    expect(scripts.code, scripts.stderr).toBe(0);
    expect(scripts.stdout.trim()).toBe('No packages with unreviewed install scripts.');
    expect(scripts.stderr).not.toMatch(/warn/i);
  });

  it.runIf(process.env.OUTPOST_TEST_FRESH_INSTALL === '1')(
    'a fresh npm ci offline: no warning, no CUDA download attempt, the native binaries in place',
    async (context) => {
      const version = await npmVersion();
      context.skip(!readsPolicy(version), `npm ${version.join('.')} predates allowScripts (npm 11.16)`);
      const dir = await mkdtemp(join(tmpdir(), 'outpost-fresh-'));
      try {
        for (const file of ['package.json', 'package-lock.json', '.npmrc'])
          if (existsSync(join(ROOT, file))) await copyFile(join(ROOT, file), join(dir, file));
        // With its script allowed, onnxruntime-node would now try api.nuget.org and fail the offline install.
        const env = { ONNXRUNTIME_NODE_INSTALL: 'cuda12' };
        const run = await npm(['ci', '--offline', '--no-audit', '--no-fund'], dir, env, FRESH_INSTALL_TIMEOUT_MS);
        expect(run.code, run.stderr).toBe(0);
        expect(run.stderr).not.toMatch(/warn/i);
        const ort = join(dir, 'node_modules', 'onnxruntime-node', 'bin', 'napi-v6', 'linux', 'x64');
        expect(existsSync(join(ort, 'libonnxruntime_providers_cuda.so'))).toBe(false);
        expect((await stat(join(dir, 'node_modules', 'aws-crt', 'dist', 'bin'))).isDirectory()).toBe(true);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    },
    FRESH_INSTALL_TIMEOUT_MS,
  );
});
