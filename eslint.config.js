// @ts-check
import tseslint from 'typescript-eslint';
import importX from 'eslint-plugin-import-x';
import { createTypeScriptImportResolver } from 'eslint-import-resolver-typescript';

/**
 * DESIGN.md, "Folders and who may import whom": each row lists what a folder may import; everything else of ours
 * is forbidden. A wrong arrow fails lint, not review.
 */
const LAYERS = Object.freeze({
  runtime: { may: [] },
  compiler: { may: ['runtime'] },
  'device-agent': { may: ['runtime', 'device-agent/protocol'] },
  'device-agent/protocol': { may: [] },
  fleet: { may: ['runtime', 'device-agent/protocol'] },
  cli: { may: ['runtime', 'compiler', 'device-agent', 'device-agent/protocol', 'fleet', 'models'] },
  models: { may: ['compiler/onnx'] },
});
const FOLDERS = ['runtime', 'compiler', 'device-agent', 'fleet', 'cli', 'models', 'test', 'bench', 'scripts'];

/** @param {string} folder @param {string} target */
const within = (folder, target) => folder === target || folder.startsWith(`${target}/`);

/** One zone per (layer, top-level folder it may not use); an allowed sub-folder becomes an `except`. */
const zones = Object.entries(LAYERS).flatMap(([layer, { may }]) =>
  FOLDERS.filter((from) => !within(layer, from) && !may.includes(from)).map((from) => ({
    target: `./${layer}`,
    from: `./${from}`,
    except: may.filter((m) => within(m, from)).map((m) => `./${m.slice(from.length + 1)}`),
    message: `DESIGN.md: ${layer}/ may import only ${may.length ? may.join(', ') : 'nothing of ours'}.`,
  })),
);
// device-agent/protocol may not reach back into the rest of device-agent.
zones.push({
  target: './device-agent/protocol',
  from: './device-agent',
  except: ['./protocol'],
  message: 'DESIGN.md: device-agent/protocol/ is the device–fleet contract and imports nothing of ours.',
});

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'coverage/**', 'models/build/**', '.scratch/**'] },
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
