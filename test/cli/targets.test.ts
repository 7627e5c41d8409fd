import { describe, expect, it } from 'vitest';
import { DEFAULT_PROFILES, TARGET_PROFILES, detectHost } from '../../compiler/targets/index.js';
import { runCli } from '../helpers/cli.js';

describe('outpost targets', () => {
  it('prints one aligned row per profile, marks the defaults and the host, and explains them', async () => {
    const { code, stdout } = await runCli(['targets']);
    expect(code).toBe(0);
    const lines = stdout.split('\n');
    expect(lines[0]).toMatch(/^target\s+arch\s+cpu\s+features\s+precisions\s+providers\s+int8 format\s+wasm\s+for$/);
    const rows = lines.slice(2, 2 + Object.keys(TARGET_PROFILES).length);
    expect(rows.map((r) => r.split(/\s+/)[0])).toEqual(Object.keys(TARGET_PROFILES));
    // Aligned: every row's arch column starts where the header's does.
    const archColumn = lines[0]?.indexOf('arch') ?? -1;
    for (const row of rows) expect(row.slice(archColumn).split(' ')[0]).toMatch(/^(x86_64|arm64)$/);
    expect(stdout).toMatch(
      /cuda:sm_87 \*\s+arm64\s+sm_87\s+fp16,bf16,tf32,dp4a,tensor-cores\s+fp16,fp32\s+tensorrt,cuda,cpu\s+S8S8\s+no/,
    );
    expect(stdout).toMatch(/x86_64:avx2 \*.*U8S8 reduce-range\s+yes/);
    expect(stdout).toContain(`--target host: ${detectHost().profile.key}`);
  });

  it('prints the table, the defaults and the host as JSON', async () => {
    const { code, stdout } = await runCli(['targets', '--json']);
    expect(code).toBe(0);
    const parsed = JSON.parse(stdout) as { profiles: { key: string }[]; defaults: unknown; host: { profile: string } };
    expect(parsed.profiles).toEqual(JSON.parse(JSON.stringify(Object.values(TARGET_PROFILES))));
    expect(parsed.defaults).toEqual(DEFAULT_PROFILES);
    expect(parsed.host.profile).toBe(detectHost().profile.key);
  });
});
