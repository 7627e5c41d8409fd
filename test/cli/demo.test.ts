import { describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';

/** ms: the demo compiles six models; on a loaded 2-core machine that alone can pass a minute. */
const DEMO_TIMEOUT_MS = 180_000;

describe('outpost demo', () => {
  it(
    'runs the whole loop on this machine: compile, broker, agent, deploy twice, infer; then a fleet rollout and an abort',
    async () => {
      const { code, stdout, stderr } = await runCli(['demo'], { timeoutMs: DEMO_TIMEOUT_MS });
      expect(code, stderr).toBe(0);
      expect(stdout).toMatch(/compiled cnn@1\.0\.0 for /);
      expect(stdout).toMatch(/deployed cnn-1\.0\.0: SUCCEEDED/);
      expect(stdout).toMatch(/infer → version 1\.0\.0/);
      expect(stdout).toMatch(/deployed cnn-1\.1\.0: SUCCEEDED/);
      expect(stdout).toMatch(/infer → version 1\.1\.0/);
      expect(stdout).toMatch(/outpost_inference_requests_total by version: 1\.0\.0: 1, 1\.1\.0: 1/);
      // The fleet part: the real agent and 15 simulated devices, a canary that completes, then one that aborts.
      expect(stdout).toMatch(/registered 16 devices: "demo-device" \(real agent\) \+ 15 simulated/);
      expect(stdout).toMatch(/deploy cnn@2\.0\.0 to 16 devices, strategy canary:3,bake=2s then all-at-once/);
      expect(stdout).toMatch(/wave 0 BAKING 3\/3 succeeded/);
      expect(stdout).toMatch(/cnn@2\.0\.0: COMPLETED in [\d.]+ s, 16 succeeded, 0 failed/);
      expect(stdout).toMatch(/cnn@2\.1\.0: ABORTED in [\d.]+ s, .*\(abort criteria tripped on wave 0/);
      expect(stdout).toMatch(/abort figures: \{"scope":"wave","wave":0,/);
      expect(stdout).toMatch(/devices outside the canary that received it: 0 /);
      expect(stdout).toMatch(
        /rollback cnn-2-1-0-rb-2_0_0 to cnn@2\.0\.0: COMPLETED, (\d+) of \1 switched canary devices/,
      );
      expect(stdout).toMatch(/"demo-device" \([^)]*\) answers with version 2\.0\.0\n/);
      // What goes as planned is narrated on stdout; stderr is for trouble (the provoked abort is not).
      expect(stderr).toBe('');
    },
    DEMO_TIMEOUT_MS + 10_000,
  );
});
