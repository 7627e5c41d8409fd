import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { tmpDir } from '../helpers/tmp.js';
import { sampleCnn } from '../helpers/compile-models.js';

describe('outpost compile', () => {
  it('--json prints the compile report in the shape of the CLI contract', async () => {
    const dir = await tmpDir();
    const out = join(dir, 'artifact');
    const { code, stdout, stderr } = await runCli([
      'compile',
      await sampleCnn(dir),
      '--target',
      'arm64:cortex-a76',
      '-o',
      out,
      '--json',
    ]);
    expect(code).toBe(0);
    // stderr is not a terminal here: progress comes as timestamped lines, one per stage at least, and nothing else.
    const lines = stderr.trim().split('\n');
    for (const line of lines) expect(line).toMatch(/^\d{4}-\d\d-\d\dT[\d:.]+Z compile: /);
    for (const stage of ['reference', 'calibrate', 'grade int8', 'build fp32', 'write artifact'])
      expect(
        lines.some((l) => l.includes(`compile: ${stage} `)),
        stage,
      ).toBe(true);
    const report = JSON.parse(stdout) as Record<string, unknown> & { variants: Record<string, unknown>[] };
    expect(report).toMatchObject({ target: 'arm64:cortex-a76', selected: 'int8' });
    expect(typeof report.seconds).toBe('number');
    for (const v of report.variants) {
      expect(v).toHaveProperty('id');
      expect(v).toHaveProperty('precision');
      expect(v).toHaveProperty('bytes');
      expect(v).toHaveProperty('excluded_nodes');
      expect(Object.keys(v.accuracy as object)).toEqual(
        expect.arrayContaining(['cosine', 'max_abs_err', 'top1_agreement']),
      );
    }
    expect(existsSync(join(out, 'manifest.json'))).toBe(true);
  });

  it('prints no progress with --quiet', async () => {
    const dir = await tmpDir();
    const { code, stderr } = await runCli([
      '--quiet',
      'compile',
      await sampleCnn(dir),
      '--target',
      'host',
      '-o',
      join(dir, 'q'),
      '--json',
    ]);
    expect(code).toBe(0);
    expect(stderr).toBe('');
  });

  it('prints a human summary with each variant', async () => {
    const dir = await tmpDir();
    const { code, stdout } = await runCli([
      'compile',
      await sampleCnn(dir),
      '--target',
      'x86_64',
      '-o',
      join(dir, 'a'),
    ]);
    expect(code).toBe(0);
    expect(stdout).toMatch(/compiled for x86_64:avx2 in [\d.]+ s/);
    expect(stdout).toMatch(/1\s+int8\s+int8\s+onnx\s+[\d.]+ KiB\s+0\.99\d+/);
    expect(stdout).toMatch(/warning: calibration and evaluation used synthetic inputs/);
  });

  it('fails in one line on an unknown target and leaves nothing at -o', async () => {
    const dir = await tmpDir();
    const out = join(dir, 'never');
    const { code, stderr } = await runCli(['compile', await sampleCnn(dir), '--target', 'sparc', '-o', out]);
    expect(code).toBe(1);
    expect(stderr.trim().split('\n')).toHaveLength(1);
    expect(stderr).toMatch(/^outpost: .*valid targets: .*x86_64:avx512-vnni.* \[UNKNOWN_TARGET\]/);
    expect(existsSync(out)).toBe(false);
  });
});
