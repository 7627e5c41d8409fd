import { defineConfig } from 'tsup';

export default defineConfig([
  {
    // The compiler's evaluator runs in its own process (compiler/evaluate/evaluator.ts), so it is an entry of its own.
    entry: {
      'cli/main': 'cli/main.ts',
      index: 'runtime/index.ts',
      'compiler/evaluate/worker': 'compiler/evaluate/worker.ts',
    },
    format: ['esm'],
    platform: 'node',
    target: 'node20',
    sourcemap: true,
    // Everything but the dashboard's browser script, which the second build writes beside it at the same time.
    clean: ['!dashboard/**'],
    splitting: true,
    dts: false,
  },
  {
    // The fleet dashboard's browser script (fleet/dashboard/client/), served by `fleet serve` from the package.
    entry: { 'dashboard/live': 'fleet/dashboard/client/live.ts' },
    format: ['iife'],
    platform: 'browser',
    target: 'es2020',
    tsconfig: 'fleet/dashboard/client/tsconfig.json',
    minify: true,
    sourcemap: false,
    clean: false,
    dts: false,
    outExtension: () => ({ js: '.js' }),
  },
]);
