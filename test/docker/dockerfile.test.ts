import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../helpers/models.js';
import { all, execForm, parseDockerfile, type Stage } from './dockerfile.js';

/**
 * Dockerfile.arm64 cannot be built here (no Docker engine), so its structure is checked instead: what the issue
 * asks of it and what hadolint's rules would flag. hadolint is neither a Debian nor an npm package; where it is
 * installed it runs too.
 */
const DOCKERFILE = join(ROOT, 'Dockerfile.arm64');
const text = readFileSync(DOCKERFILE, 'utf8');
const dockerfile = parseDockerfile(text);
const [build, runtime] = dockerfile.stages as [Stage, Stage];

function hadolint(): string | undefined {
  const found = spawnSync('sh', ['-c', 'command -v hadolint'], { encoding: 'utf8' });
  return found.status === 0 ? found.stdout.trim() : undefined;
}

describe('Dockerfile.arm64', () => {
  it('has a build stage on the build platform and a runtime stage on the target platform', () => {
    expect(dockerfile.stages.map((s) => s.name)).toEqual(['build', 'runtime']);
    expect(build.from.flags.platform).toBe('$BUILDPLATFORM');
    // The runtime stage takes the platform buildx was asked for (--platform linux/arm64): no override.
    expect(runtime.from.flags.platform).toBeUndefined();
    for (const stage of [build, runtime]) {
      expect(stage.image).toMatch(/^node:\$\{NODE_VERSION\}-bookworm-slim$/);
      expect(all(stage, 'ARG').map((a) => a.args)).toContain('TARGETARCH');
    }
    const nodeVersion = dockerfile.globalArgs.find((a) => a.args.startsWith('NODE_VERSION='))?.args;
    expect(nodeVersion).toMatch(/^NODE_VERSION=20\.\d+\.\d+$/);
  });

  it('assembles the image with the bundle script, for the target architecture', () => {
    const runs = all(build, 'RUN').map((r) => r.args);
    expect(runs).toContain('npm ci --no-audit --no-fund');
    expect(runs.find((r) => r.startsWith('npm run bundle'))).toMatch(/--arch "\$\{TARGETARCH\}".*--out \/opt\/outpost/);
    // The runtime stage copies only the bundle: no second install, no node_modules from the build stage's root.
    expect(all(runtime, 'COPY').map((c) => [c.flags.from, c.args])).toEqual([['build', '/opt/outpost /opt/outpost']]);
    expect(all(runtime, 'RUN').some((r) => /\bnpm (ci|install|i)\b/.test(r.args))).toBe(false);
  });

  it('runs as a non-root user with the data directory as a volume', () => {
    const users = all(runtime, 'USER').map((u) => u.args);
    expect(users.at(-1)).toBe('outpost');
    expect(users).not.toContain('root');
    expect(all(runtime, 'RUN').some((r) => r.args.includes('useradd --system'))).toBe(true);
    expect(all(runtime, 'VOLUME').map((v) => v.args)).toEqual(['["/var/lib/outpost"]']);
    expect(
      all(runtime, 'ENV')
        .map((e) => e.args)
        .join(' '),
    ).toMatch(/OUTPOST_CACHE_DIR=\/var\/lib\/outpost\/cache/);
  });

  it("checks health with the agent's local status and starts the agent", () => {
    const [healthcheck] = all(runtime, 'HEALTHCHECK');
    expect(healthcheck?.flags).toMatchObject({ interval: '30s', retries: '3' });
    expect(execForm(healthcheck ?? build.from)).toEqual([
      'outpost',
      'agent',
      'status',
      '--data-dir',
      '/var/lib/outpost',
      '--check',
    ]);
    expect(execForm(all(runtime, 'ENTRYPOINT')[0] ?? build.from)).toEqual(['outpost', 'agent']);
    expect(execForm(all(runtime, 'CMD')[0] ?? build.from)).toEqual(['--config', '/etc/outpost/agent.json']);
  });

  it('carries OCI labels', () => {
    const labels = all(runtime, 'LABEL')
      .map((l) => l.args)
      .join(' ');
    for (const key of ['title', 'description', 'version', 'licenses'])
      expect(labels).toContain(`org.opencontainers.image.${key}=`);
  });

  it('follows the hadolint rules that apply to it', () => {
    for (const stage of [build, runtime]) {
      // DL3006/DL3007: a pinned tag, never latest.
      expect(stage.image).not.toMatch(/:latest$|^[^:]+$/);
      for (const run of all(stage, 'RUN')) {
        // DL3004: no sudo; DL3027: apt not apt-get; DL3000-ish: cd inside RUN instead of WORKDIR.
        expect(run.args).not.toMatch(/\bsudo\b|\bapt\s|(^|&&)\s*cd\s/);
      }
      // DL3020: COPY, not ADD, for local files.
      expect(all(stage, 'ADD')).toEqual([]);
      // DL3025: JSON form for ENTRYPOINT and CMD, so signals reach the agent (it stops cleanly on SIGTERM).
      for (const i of [...all(stage, 'ENTRYPOINT'), ...all(stage, 'CMD')]) expect(execForm(i)).toBeDefined();
    }
  });

  it('leaves what the build makes on the host out of the build context', () => {
    const ignored = readFileSync(join(ROOT, '.dockerignore'), 'utf8').split('\n');
    for (const entry of ['node_modules', 'dist', '.git']) expect(ignored).toContain(entry);
  });

  it.skipIf(hadolint() === undefined)('passes hadolint (where installed)', () => {
    execFileSync(hadolint() ?? 'hadolint', [DOCKERFILE], { stdio: 'pipe' });
  });
});
