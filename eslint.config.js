// @ts-check
import tseslint from 'typescript-eslint';
import importX from 'eslint-plugin-import-x';
import { createTypeScriptImportResolver } from 'eslint-import-resolver-typescript';

/**
 * docs/architecture.md, "Who may import whom": each row lists what a folder may import (`may`) and the
 * modules through which other folders reach it (`entries`, relative to the folder); everything else of ours is
 * forbidden, and so is a deep import past an entry. A wrong arrow fails lint, not review. A sub-folder allowed on its
 * own (`compiler/onnx`) is entered through its `index.ts`. `test/`, `bench/` and `scripts/` have no row: tests exercise
 * internals and benches measure them, so they may import any module (and nothing may import them).
 */
const LAYERS = Object.freeze({
  runtime: {
    may: [],
    // One module each (errors, log, retry, version), the in-process API (index.ts), and one index.ts per subsystem.
    entries: [
      'index.ts',
      'errors.ts',
      'log.ts',
      'retry.ts',
      'version.ts',
      'artifact/index.ts',
      'batch/index.ts',
      'backends/index.ts',
      'host/index.ts',
      'model/index.ts',
      'monitor/index.ts',
      'pipeline/index.ts',
      'server/index.ts',
      'server/http/index.ts',
      'tensor/index.ts',
      'tuning/index.ts',
    ],
  },
  compiler: { may: ['runtime'], entries: ['index.ts'] },
  'device-agent': { may: ['runtime', 'device-agent/protocol'], entries: ['index.ts'] },
  'device-agent/protocol': { may: [], entries: ['index.ts'] },
  fleet: { may: ['runtime', 'device-agent/protocol'], entries: ['index.ts'] },
  // The dashboard is part of the fleet (it reads the store and the API's views); its browser script is not.
  'fleet/dashboard': { may: ['runtime', 'device-agent/protocol'], entries: ['index.ts'] },
  'fleet/dashboard/client': { may: [], entries: [] },
  cli: { may: ['runtime', 'compiler', 'device-agent', 'device-agent/protocol', 'fleet', 'models'], entries: [] },
  models: { may: ['compiler/onnx'], entries: ['index.ts'] },
});
const FOLDERS = ['runtime', 'compiler', 'device-agent', 'fleet', 'cli', 'models', 'test', 'bench', 'scripts'];

/** @param {string} folder @param {string} target */
const within = (folder, target) => folder === target || folder.startsWith(`${target}/`);
/** @param {string} layer @returns {readonly string[]} */
const entriesOf = (layer) =>
  layer in LAYERS ? LAYERS[/** @type {keyof typeof LAYERS} */ (layer)].entries : ['index.ts'];

/**
 * One zone per (layer, top-level folder not its own): everything in that folder is forbidden except the public
 * entries of what the layer may import from it (the whole folder, or an allowed sub-folder).
 */
const zones = Object.entries(LAYERS).flatMap(([layer, { may }]) =>
  FOLDERS.filter((from) => !within(layer, from)).map((from) => {
    const allowed = may.filter((m) => within(m, from));
    const except = allowed.flatMap((m) => entriesOf(m).map((entry) => `./${`${m}/${entry}`.slice(from.length + 1)}`));
    const what = may.length ? `${may.join(', ')}, each through its public entries` : 'nothing of ours';
    const here = except.length ? ` (${from}/: ${except.map((e) => e.slice(2)).join(', ')})` : '';
    return {
      target: `./${layer}`,
      from: `./${from}`,
      except,
      message: `docs/architecture.md: ${layer}/ may import only ${what}${here}.`,
    };
  }),
);
// device-agent/protocol may not reach back into the rest of device-agent.
zones.push({
  target: './device-agent/protocol',
  from: './device-agent',
  except: ['./protocol'],
  message: 'docs/architecture.md: device-agent/protocol/ is the device–fleet contract and imports nothing of ours.',
});

// The dashboard's browser script runs in a page: it imports nothing of ours, not even the rest of fleet/.
zones.push({
  target: './fleet/dashboard/client',
  from: './fleet',
  except: ['./dashboard/client'],
  message: 'docs/architecture.md: fleet/dashboard/client/ runs in the browser and imports nothing of ours.',
});

export default tseslint.config(
  { ignores: ['dist/**', '.test-dist*/**', 'node_modules/**', 'coverage/**', 'models/build/**', '.scratch/**'] },
  ...tseslint.configs.strictTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    plugins: { 'import-x': importX },
    settings: {
      'import-x/resolver-next': [createTypeScriptImportResolver({ project: './tsconfig.json' })],
    },
    rules: {
      'import-x/no-restricted-paths': ['error', { zones }],
      'import-x/no-unresolved': 'error',
      'import-x/no-cycle': ['error', { maxDepth: 6 }],
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/restrict-template-expressions': ['error', { allowNumber: true, allowBoolean: true }],
      '@typescript-eslint/no-unnecessary-condition': ['error', { allowConstantLoopConditions: true }],
      '@typescript-eslint/no-confusing-void-expression': ['error', { ignoreArrowShorthand: true }],
      'no-console': 'error',
      // The agent's start-up cost (docs/agent-footprint.md): `{ z }` keeps all of zod, locales included, in dist/;
      // prom-client's index loads collectors, the push gateway and cluster support the server never uses.
      'no-restricted-syntax': [
        'error',
        {
          selector: "ImportDeclaration[source.value='zod'][importKind='value'] > ImportSpecifier[imported.name='z']",
          message: "import * as z from 'zod' (tree-shaken in dist/: docs/agent-footprint.md)",
        },
      ],
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          paths: [
            {
              name: 'prom-client',
              allowTypeImports: true,
              message:
                'runtime/server/metrics/prom.ts: the classes without prom-client’s index (docs/agent-footprint.md)',
            },
          ],
        },
      ],
    },
  },
  {
    // Human output belongs to the CLI; tests, benches and build scripts print what they measured.
    files: ['cli/**', 'bench/**', 'scripts/**', 'models/**'],
    rules: { 'no-console': 'off' },
  },
  {
    files: ['**/*.js'],
    ...tseslint.configs.disableTypeChecked,
  },
);
