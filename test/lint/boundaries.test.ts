import { join } from 'node:path';
import { ESLint } from 'eslint';
import tseslint from 'typescript-eslint';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../helpers/models.js';

/**
 * The import table (docs/architecture.md, "Who may import whom"), enforced by lint: a wrong arrow must fail, a right
 * one must pass.
 */
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

  // An allowed layer, but past its public entry.
  it.each([
    ['cli/x.ts', "import { loadModel } from '../runtime/model/load.js';\nexport const x = loadModel;\n"],
    ['compiler/x.ts', "import { DTYPES } from '../runtime/tensor/dtype.js';\nexport const x = DTYPES;\n"],
    [
      'fleet/api/x.ts',
      "import { BearerAuth } from '../../runtime/server/http/auth.js';\nexport const x = BearerAuth;\n",
    ],
    [
      'device-agent/x.ts',
      "import { ModelService } from '../runtime/server/serving/service.js';\nexport const x = ModelService;\n",
    ],
    ['cli/x.ts', "import { compile } from '../compiler/compile.js';\nexport const x = compile;\n"],
    ['cli/x.ts', "import { Agent } from '../device-agent/agent.js';\nexport const x = Agent;\n"],
    ['cli/x.ts', "import { deploy } from '../fleet/deploy.js';\nexport const x = deploy;\n"],
    ['models/x.ts', "import { GraphBuilder } from '../compiler/onnx/builder.js';\nexport const x = GraphBuilder;\n"],
    ['fleet/x.ts', "import { decodeCbor } from '../device-agent/protocol/cbor.js';\nexport const x = decodeCbor;\n"],
  ])('%s may not import a module behind a public entry: %s', async (file, source) => {
    const messages = await violations(file, source);
    expect(messages).toHaveLength(1);
    expect(messages[0]).toContain('docs/architecture.md');
  });

  it.each([
    ['compiler/x.ts', "import { loadModel } from '../runtime/index.js';\nexport const x = loadModel;\n"],
    ['models/x.ts', "import { GraphBuilder } from '../compiler/onnx/index.js';\nexport const x = GraphBuilder;\n"],
    ['cli/x.ts', "import { SAMPLES } from '../models/index.js';\nexport const x = SAMPLES;\n"],
    [
      'fleet/store/x.ts',
      "import { detectHostTarget } from '../../runtime/host/index.js';\nexport const x = detectHostTarget;\n",
    ],
    [
      'device-agent/x.ts',
      "import { detectHostTarget } from '../runtime/host/index.js';\nexport const x = detectHostTarget;\n",
    ],
    ['cli/x.ts', "import { loadModel } from '../runtime/model/index.js';\nexport const x = loadModel;\n"],
    ['cli/x.ts', "import { OutpostError } from '../runtime/errors.js';\nexport const x = OutpostError;\n"],
    ['fleet/api/x.ts', "import { BearerAuth } from '../../runtime/server/index.js';\nexport const x = BearerAuth;\n"],
    [
      'fleet/api/y.ts',
      "import { HttpError } from '../../runtime/server/http/index.js';\nexport const y = HttpError;\n",
    ],
    ['cli/x.ts', "import { compile } from '../compiler/index.js';\nexport const x = compile;\n"],
    ['cli/x.ts', "import { Agent } from '../device-agent/index.js';\nexport const x = Agent;\n"],
    [
      'fleet/x.ts',
      "import { JOB_STATUSES } from '../device-agent/protocol/index.js';\nexport const x = JOB_STATUSES;\n",
    ],
    // Tests exercise internals and benches measure them: deep imports are theirs to make.
    [
      'test/runtime/x.ts',
      "import { splitRows } from '../../runtime/server/scheduling/rows.js';\nexport const x = splitRows;\n",
    ],
    ['bench/x.ts', "import { measure } from '../runtime/tuning/stats.js';\nexport const x = measure;\n"],
  ])('%s may import that', async (file, source) => {
    expect(await violations(file, source)).toEqual([]);
  });
});
