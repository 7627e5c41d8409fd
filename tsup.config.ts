import { defineConfig } from 'tsup';

export default defineConfig({
  entry: { 'cli/main': 'cli/main.ts', index: 'runtime/index.ts' },
  format: ['esm'],
  platform: 'node',
  target: 'node20',
  sourcemap: true,
  clean: true,
  splitting: true,
  dts: false,
});
