import { defineConfig } from 'tsup';

// The pure-JS dependencies the device agent loads at start, bundled into dist/ instead of resolved from node_modules
// at run time: one file per chunk to compile instead of ~300 modules to resolve, read and wrap (docs/agent-footprint.md).
// Native or binary-carrying packages (onnxruntime-*, sharp, better-sqlite3, aws-crt) and the fleet's stay external.
const BUNDLED = ['pino', 'zod', 'commander', 'mqtt'];
// Bundled CommonJS calls require() for Node's built-ins; an ES module has none of its own.
const REQUIRE_SHIM =
  "import { createRequire as __outpostRequire } from 'node:module'; const require = __outpostRequire(import.meta.url);";

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
    noExternal: BUNDLED,
    banner: { js: REQUIRE_SHIM },
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
