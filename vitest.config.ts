import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Native addons (onnxruntime-node, sharp) and child processes behave best in forked workers.
    pool: 'forks',
    // Two files at a time even on 2 cores (vitest's default is cpus − 1 = 1): most files mostly wait on child
    // processes, MQTT and polling, so a second worker overlaps those waits instead of leaving a core idle.
    maxWorkers: 2,
    // Bundles the CLI once per source change, so the suite's child processes start without tsx
    // (test/helpers/cli-build.ts).
    globalSetup: ['test/helpers/cli-build.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    env: { OUTPOST_LOG_LEVEL: 'silent' },
  },
});
