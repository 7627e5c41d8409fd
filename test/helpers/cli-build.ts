import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { build, type Options } from 'tsup';
import config from '../../tsup.config.js';
import { CLI_ENV } from './cli-entry.js';
import { ROOT } from './models.js';

/**
 * The suite's global setup (vitest.config.ts `globalSetup`): bundles the CLI from the current source with the
 * project's own tsup config (the node entries: cli/main, the runtime index, the evaluator worker) into
 * `<root>/.test-dist/`, and names its entry in OUTPOST_TEST_CLI for test/helpers/cli-entry.ts. The bundle sits one
 * level below the root like dist/, so it finds package.json, node_modules and dist/dashboard exactly as dist/ does.
 * It is rebuilt only when a source file changed (a key over every source file's path, size and mtime), into a
 * fresh folder renamed into place. With its source maps, stack traces name the .ts lines as they do from source.
 * OUTPOST_TEST_FROM_SOURCE=1 skips it: every child process then runs through tsx.
 */
const OUT = join(ROOT, '.test-dist');
const KEY_FILE = '.source-key';
const SOURCES = ['cli', 'runtime', 'compiler', 'device-agent', 'fleet', 'models', 'bench', 'scripts'];
const FILES = ['package.json', 'package-lock.json', 'tsup.config.ts', 'tsconfig.json'];

async function sourceKey(): Promise<string> {
  const hash = createHash('sha256');
  const add = async (path: string) => {
    const s = await stat(path);
    hash.update(`${path}\0${s.size}\0${s.mtimeMs}\n`);
  };
  for (const file of FILES) await add(join(ROOT, file));
  for (const dir of SOURCES) {
    const entries = await readdir(join(ROOT, dir), { recursive: true, withFileTypes: true });
    const files = entries
      .filter((e) => e.isFile() && /\.(ts|json)$/.test(e.name) && !e.parentPath.includes('node_modules'))
      .map((e) => join(e.parentPath, e.name))
      .sort();
    for (const file of files) await add(file);
  }
  return hash.digest('hex');
}

async function buildCli(key: string): Promise<void> {
  const node = (config as Options[]).find((c) => c.platform === 'node');
  if (node === undefined) throw new Error('tsup.config.ts has no node entry');
  const fresh = `${OUT}.${process.pid}`;
  await rm(fresh, { recursive: true, force: true });
  await build({ ...node, outDir: fresh, clean: true, sourcemap: true, config: false, silent: true });
  await writeFile(join(fresh, KEY_FILE), key);
  const old = `${OUT}.old.${process.pid}`;
  if (existsSync(OUT)) await rename(OUT, old);
  await rename(fresh, OUT);
  await rm(old, { recursive: true, force: true });
}

export default async function setup(): Promise<void> {
  if (process.env.OUTPOST_TEST_FROM_SOURCE === '1') return;
  const key = await sourceKey();
  const current = await readFile(join(OUT, KEY_FILE), 'utf8').catch(() => '');
  if (current !== key) await buildCli(key);
  process.env[CLI_ENV] = join(OUT, 'cli', 'main.js');
}
