import { defineConfig } from 'tsup';

export default defineConfig({
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
  clean: true,
  splitting: true,
  dts: false,
});
