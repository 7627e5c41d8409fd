import { join } from 'node:path';
import { ESLint } from 'eslint';
import tseslint from 'typescript-eslint';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../helpers/models.js';

/** DESIGN.md's import table, enforced by lint: a wrong arrow must fail, a right one must pass. */
// The snippets are not files the TypeScript project knows, so lint them without type information.
const eslint = new ESLint({ cwd: ROOT, overrideConfig: [tseslint.configs.disableTypeChecked] });

async function violations(file: string, source: string): Promise<string[]> {
  const [result] = await eslint.lintText(source, { filePath: join(ROOT, file) });
  return (result?.messages ?? []).filter((m) => m.ruleId === 'import-x/no-restricted-paths').map((m) => m.message);
}

describe('import boundaries', () => {
  it.each([
    ['runtime/x.ts', "import { loadModel } from '../compiler/onnx/index.js';\nexport const x = loadModel;\n"],
    ['runtime/model/x.ts', "import { COMMANDS } from '../../cli/commands/index.js';\nexport const x = COMMANDS;\n"],
    ['compiler/x.ts', "import { SAMPLES } from '../models/samples.js';\nexport const x = SAMPLES;\n"],
    ['models/x.ts', "import { loadModel } from '../runtime/index.js';\nexport const x = loadModel;\n"],
    // The fleet reads the target table's keys, never the compiler: host detection lives in runtime/host.
    [
      'fleet/service/x.ts',
      "import { TARGET_PROFILES } from '../../compiler/targets/index.js';\nexport const x = TARGET_PROFILES;\n",
    ],
    ['device-agent/x.ts', "import { serveFleet } from '../fleet/index.js';\nexport const x = serveFleet;\n"],
  ])('%s may not import that', async (file, source) => {
    expect(await violations(file, source)).toHaveLength(1);
  });

  it.each([
    ['compiler/x.ts', "import { loadModel } from '../runtime/index.js';\nexport const x = loadModel;\n"],
    ['models/x.ts', "import { GraphBuilder } from '../compiler/onnx/index.js';\nexport const x = GraphBuilder;\n"],
    ['cli/x.ts', "import { SAMPLES } from '../models/samples.js';\nexport const x = SAMPLES;\n"],
    [
      'fleet/store/x.ts',
      "import { detectHostTarget } from '../../runtime/host/index.js';\nexport const x = detectHostTarget;\n",
    ],
    [
      'device-agent/x.ts',
      "import { detectHostTarget } from '../runtime/host/index.js';\nexport const x = detectHostTarget;\n",
    ],
  ])('%s may import that', async (file, source) => {
    expect(await violations(file, source)).toEqual([]);
  });
});
