/**
 * `npm run bundle -- --arch arm64 --out <dir>`: the deployable tree for a device, built on any host.
 *
 *   <out>/dist/           the CLI and runtime, built by tsup (architecture-independent JavaScript)
 *   <out>/package.json    name, version, `bin.outpost` → dist/cli/main.js, the production dependencies
 *   <out>/node_modules/   production dependencies resolved for the target (bundle-deps.ts)
 *   <out>/node/bin/node   with --with-node: Node.js for the target (bundle-node.ts), run by <out>/bin/outpost
 *   <out>/BUNDLE.json     what was built for what, from which lock file, and the size breakdown
 *
 * Dockerfile.arm64 runs this same script in its build stage and copies `<out>` into the runtime image, so the
 * container and a bundle copied to a Pi cannot drift apart. docs/arm64.md describes both.
 */
import { existsSync } from 'node:fs';
import { chmod, lstat, mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { OutpostError, isOutpostError, messageOf } from '../runtime/errors.js';
import { installDependencies, lockDigest } from './bundle-deps.js';
import { BUNDLED_NODE, addNodeRuntime } from './bundle-node.js';
import { parseArch, parseLibc, run, targetName, type BundleTarget } from './bundle-target.js';

const ROOT = resolve(import.meta.dirname, '..');
const DEFAULT_CACHE = join(ROOT, 'node_modules', '.cache', 'outpost-bundle');
/** Marks a directory as a bundle, so `--out` may replace it; any other non-empty directory is refused. */
const MARKER = 'BUNDLE.json';
/** Packages listed by name in the size breakdown; the rest are summed. */
const SIZE_TOP = 8;

const USAGE = `usage: npm run bundle -- --arch <arm64|x64> --out <dir> [--libc glibc|musl] [--with-node]
                       [--cache <dir> | --no-cache] [--json]`;

interface Options {
  readonly target: BundleTarget;
  readonly out: string;
  readonly withNode: boolean;
  readonly cacheDir: string | undefined;
  readonly json: boolean;
}

function parseOptions(argv: readonly string[]): Options {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      arch: { type: 'string', default: process.arch },
      libc: { type: 'string', default: 'glibc' },
      out: { type: 'string' },
      'with-node': { type: 'boolean', default: false },
      cache: { type: 'string', default: DEFAULT_CACHE },
      'no-cache': { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (values.out === undefined) throw new OutpostError('INVALID_ARGUMENT', `--out is required\n${USAGE}`);
  return {
    target: { os: 'linux', arch: parseArch(values.arch), libc: parseLibc(values.libc) },
    out: resolve(values.out),
    withNode: values['with-node'],
    cacheDir: values['no-cache'] ? undefined : resolve(values.cache),
    json: values.json,
  };
}

/** An absent or empty `--out`, or a previous bundle, is (re)made; anything else is someone's data and refused. */
async function prepareOut(out: string): Promise<void> {
  if (existsSync(out)) {
    const entries = await readdir(out);
    if (entries.length > 0 && !entries.includes(MARKER)) {
      throw new OutpostError(
        'OUTPUT_UNWRITABLE',
        `--out ${out} is a non-empty directory that is not a bundle (no ${MARKER}); give an empty or new directory`,
      );
    }
    await rm(out, { recursive: true, force: true });
  }
  await mkdir(out, { recursive: true });
}

interface RootPackage {
  name: string;
  version: string;
  description?: string;
  license?: string;
  engines?: Record<string, string>;
  dependencies: Record<string, string>;
}

/** The bundle's own package.json: `npx outpost`, `npm link` and `node dist/cli/main.js` all work from it. */
function bundleManifest(pkg: RootPackage): string {
  return `${JSON.stringify(
    {
      name: pkg.name,
      version: pkg.version,
      description: pkg.description,
      license: pkg.license,
      private: true,
      type: 'module',
      engines: pkg.engines,
      bin: { outpost: 'dist/cli/main.js' },
      dependencies: pkg.dependencies,
    },
    null,
    2,
  )}\n`;
}

/** `<out>/bin/outpost` with a bundled runtime: the CLI under that Node, wherever the bundle is moved. */
const LAUNCHER = `#!/bin/sh
# Outpost with its own Node.js runtime (npm run bundle -- --with-node).
here=$(dirname "$(readlink -f "$0")")
exec "$here/../${BUNDLED_NODE}" "$here/../dist/cli/main.js" "$@"
`;

/** Bytes of every file under `path` (apparent size, symlinks not followed). */
async function bytesUnder(path: string): Promise<number> {
  const info = await lstat(path);
  if (!info.isDirectory()) return info.size;
  let total = 0;
  for (const entry of await readdir(path)) total += await bytesUnder(join(path, entry));
  return total;
}

export interface SizeBreakdown {
  readonly totalBytes: number;
  /** dist, node (runtime), node_modules/<package> for the largest packages, then "other packages". */
  readonly parts: readonly { readonly name: string; readonly bytes: number }[];
}

export async function sizeBreakdown(out: string): Promise<SizeBreakdown> {
  const parts: { name: string; bytes: number }[] = [];
  for (const top of ['dist', 'node'])
    if (existsSync(join(out, top))) parts.push({ name: top, bytes: await bytesUnder(join(out, top)) });
  const modules = join(out, 'node_modules');
  const packages: { name: string; bytes: number }[] = [];
  for (const entry of await readdir(modules)) {
    const names = entry.startsWith('@') ? (await readdir(join(modules, entry))).map((n) => `${entry}/${n}`) : [entry];
    for (const name of names)
      packages.push({ name: `node_modules/${name}`, bytes: await bytesUnder(join(modules, name)) });
  }
  packages.sort((a, b) => b.bytes - a.bytes);
  const rest = packages.slice(SIZE_TOP);
  parts.push(...packages.slice(0, SIZE_TOP), {
    name: `${rest.length} other packages`,
    bytes: rest.reduce((sum, p) => sum + p.bytes, 0),
  });
  return { totalBytes: await bytesUnder(out), parts };
}

const mib = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;

export interface BundleReport {
  readonly outpost: string;
  readonly target: BundleTarget;
  /** The bundled Node.js version, with --with-node. */
  readonly node: string | null;
  readonly lockSha256: string;
  readonly installKey: string;
  readonly dependenciesFromCache: boolean;
  readonly builtAt: string;
  readonly seconds: number;
  readonly sizes: SizeBreakdown;
}

async function bundle(options: Options): Promise<BundleReport> {
  const { target, out } = options;
  const pkg = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as RootPackage;
  await prepareOut(out);
  const started = performance.now();
  process.stderr.write(`bundle: building dist/ for ${targetName(target)} into ${out}\n`);
  await run(join(ROOT, 'node_modules', '.bin', 'tsup'), ['--out-dir', join(out, 'dist'), '--silent'], {
    cwd: ROOT,
    quiet: true,
  });
  process.stderr.write('bundle: production dependencies (npm ci)\n');
  const deps = await installDependencies(ROOT, out, target, options.cacheDir);
  let node: string | undefined;
  if (options.withNode) {
    process.stderr.write('bundle: Node.js runtime\n');
    node = await addNodeRuntime(out, target, options.cacheDir ?? join(out, '.node-cache'));
    await rm(join(out, '.node-cache'), { recursive: true, force: true });
    await mkdir(join(out, 'bin'), { recursive: true });
    await writeFile(join(out, 'bin', 'outpost'), LAUNCHER);
    await chmod(join(out, 'bin', 'outpost'), 0o755);
  }
  await writeFile(join(out, 'package.json'), bundleManifest(pkg));
  const sizes = await sizeBreakdown(out);
  const report: BundleReport = {
    outpost: pkg.version,
    target,
    node: node ?? null,
    lockSha256: await lockDigest(ROOT),
    installKey: deps.key,
    dependenciesFromCache: deps.fromCache,
    builtAt: new Date().toISOString(),
    seconds: Math.round((performance.now() - started) / 100) / 10,
    sizes,
  };
  await writeFile(join(out, MARKER), `${JSON.stringify(report, null, 2)}\n`);
  return report;
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  const report = await bundle(options);
  if (options.json) {
    console.log(JSON.stringify(report, null, 2));
    return;
  }
  console.log(`bundle ${options.out}  (${targetName(options.target)}, ${mib(report.sizes.totalBytes)})`);
  for (const part of report.sizes.parts) console.log(`  ${mib(part.bytes).padStart(10)}  ${part.name}`);
}

try {
  await main();
} catch (error) {
  const code = isOutpostError(error) ? error.code : 'INTERNAL';
  console.error(`bundle: ${messageOf(error)} [${code}]`);
  process.exitCode = 1;
}
