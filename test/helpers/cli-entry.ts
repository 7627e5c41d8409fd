import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from './models.js';

/**
 * Where the suite's child processes (`outpost …`, the agent, `fleet serve`) start from. The suite's global setup
 * (test/helpers/cli-build.ts) bundles the CLI from the current source once per source change into `.test-dist/`, with
 * the project's own tsup config, and names its entry in OUTPOST_TEST_CLI: a bundled start is ~0.7 s of CPU where a
 * start from source through tsx is ~2.3 s, and the suite starts hundreds. Without it (a bench, a script, or
 * OUTPOST_TEST_FROM_SOURCE=1) the CLI runs from source through tsx as before. No vitest here: benches may use it.
 */
export const CLI_ENV = 'OUTPOST_TEST_CLI';

/** The node arguments that run the CLI: the suite's bundle when there is one, else cli/main.ts through tsx. */
export function cliEntry(): string[] {
  const built = process.env[CLI_ENV];
  if (built !== undefined && built !== '' && existsSync(built)) return ['--enable-source-maps', built];
  return ['--import', 'tsx', join(ROOT, 'cli', 'main.ts')];
}
