import { describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';

describe('outpost demo', () => {
  it('runs the whole loop on this machine: compile, broker, agent, deploy twice, infer', async () => {
    const { code, stdout, stderr } = await runCli(['demo'], { timeoutMs: 120_000 });
    expect(code, stderr).toBe(0);
    expect(stdout).toMatch(/compiled cnn@1\.0\.0 for /);
    expect(stdout).toMatch(/deployed cnn-1\.0\.0: SUCCEEDED/);
    expect(stdout).toMatch(/infer → version 1\.0\.0/);
    expect(stdout).toMatch(/deployed cnn-1\.1\.0: SUCCEEDED/);
    expect(stdout).toMatch(/infer → version 1\.1\.0/);
    expect(stdout).toMatch(/outpost_inference_requests_total by version: 1\.0\.0: 1, 1\.1\.0: 1/);
  });
});
