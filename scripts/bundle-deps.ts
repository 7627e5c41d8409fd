import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { cp, mkdir, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { npmPlatformFlags, run, targetName, type BundleTarget } from './bundle-target.js';

/**
 * The bundle's production `node_modules`, resolved for the target rather than this host: `npm ci` from the
 * project's own lock file (the exact versions CI tested) with npm's `--os/--cpu/--libc` selection, then the other
 * platforms' binaries that some packages carry all at once are pruned. Installs are cached by everything that
 * decides their content, so a second bundle (the emulated test's, a rebuild) copies instead of installing.
 */

/**
 * Bumped when the install or pruning below changes what lands in `node_modules`: it is part of the cache key.
 * 1: npm ci --omit=dev --ignore-scripts + PRUNE.
 */
const INSTALL_RECIPE_VERSION = 1;

/**
 * `--ignore-scripts` skips every install script, each on purpose: onnxruntime-node's postinstall downloads CUDA
 * libraries from outside the npm registry (package.json's `allowScripts` denies it too; a Jetson builds its own,
 * docs/install-jetson.md); aws-crt's only rebuilds from source when its prebuilt
 * binary is missing (for linux-arm64-glibc it is present); protobufjs's only prints a version warning. None of them
 * may run here anyway: they would run on the build host, not the target.
 */
const NPM_CI_FLAGS = Object.freeze(['ci', '--omit=dev', '--ignore-scripts', '--no-audit', '--no-fund']);

interface PruneRule {
  /** Package directory under node_modules. */
  readonly pkg: string;
  /** Directory inside the package whose entries are pruned. */
  readonly dir: string;
  /** Paths under `dir` to keep (may be nested, `linux/arm64`); everything else under `dir` goes. */
  readonly keep: (target: BundleTarget) => readonly string[];
  readonly why: string;
}

/** Packages that ship every platform's binaries in one tarball, where npm's platform selection cannot help. */
export const PRUNE: readonly PruneRule[] = Object.freeze([
  {
    pkg: 'onnxruntime-node',
    dir: 'bin/napi-v6',
    keep: (t) => [`${t.os}/${t.arch}`],
    why: "native binaries of linux/darwin/win32 × x64/arm64 (≈290 MB); only the target's is loadable",
  },
  {
    pkg: 'aws-crt',
    dir: 'dist/bin',
    keep: (t) => [`${t.os}-${t.arch}-${t.libc}`],
    why: 'prebuilt addon for seven platform/libc pairs',
  },
  {
    pkg: 'onnxruntime-web',
    dir: 'dist',
    // Node resolves the package's "node" export (ort.node.min.*), which loads only the plain SIMD+threads WASM
    // build; the JSEP/JSPI/asyncify builds, the browser bundles and the source maps are for browsers (WebGPU, WebNN).
    keep: () => ['ort.node.min.mjs', 'ort.node.min.js', 'ort-wasm-simd-threaded.mjs', 'ort-wasm-simd-threaded.wasm'],
    why: 'browser builds (WebGPU/JSEP, JSPI, asyncify) and source maps',
  },
]);

async function pruneUnder(dir: string, keep: readonly string[]): Promise<void> {
  for (const entry of await readdir(dir)) {
    const exact = keep.includes(entry);
    const nested = keep.filter((k) => k.startsWith(`${entry}/`)).map((k) => k.slice(entry.length + 1));
    if (exact) continue;
    if (nested.length > 0) await pruneUnder(join(dir, entry), nested);
    else await rm(join(dir, entry), { recursive: true, force: true });
  }
}

/** Applies PRUNE to an installed `node_modules`; a rule whose package or directory is absent is skipped. */
export async function prune(nodeModules: string, target: BundleTarget): Promise<void> {
  for (const rule of PRUNE) {
    const dir = join(nodeModules, rule.pkg, rule.dir);
    if (existsSync(dir)) await pruneUnder(dir, rule.keep(target));
  }
}

interface ProjectFiles {
  readonly packageJson: string;
  readonly lock: string;
  readonly npmrc: string | undefined;
}

async function projectFiles(root: string): Promise<ProjectFiles> {
  const npmrc = join(root, '.npmrc');
  return {
    packageJson: await readFile(join(root, 'package.json'), 'utf8'),
    lock: await readFile(join(root, 'package-lock.json'), 'utf8'),
    npmrc: existsSync(npmrc) ? await readFile(npmrc, 'utf8') : undefined,
  };
}

/**
 * The package.json `npm ci` installs from: the project's, minus its scripts (nothing of ours runs at install).
 * Dependencies, devDependencies and overrides stay as they are, because `npm ci` refuses a lock file that does not
 * match them; `--omit=dev` keeps the dev ones out.
 */
function installManifest(packageJson: string): string {
  const manifest = JSON.parse(packageJson) as Record<string, unknown>;
  delete manifest.scripts;
  return `${JSON.stringify(manifest, null, 2)}\n`;
}

/** Everything that decides the installed tree: lock, manifest, npm settings, target and this recipe. */
export function installKey(files: ProjectFiles, target: BundleTarget): string {
  return createHash('sha256')
    .update(
      JSON.stringify([INSTALL_RECIPE_VERSION, targetName(target), installManifest(files.packageJson), files.lock]),
    )
    .update(files.npmrc ?? '')
    .digest('hex')
    .slice(0, 16);
}

async function installInto(dir: string, files: ProjectFiles, target: BundleTarget): Promise<void> {
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'package.json'), installManifest(files.packageJson));
  await writeFile(join(dir, 'package-lock.json'), files.lock);
  if (files.npmrc !== undefined) await writeFile(join(dir, '.npmrc'), files.npmrc);
  await run('npm', [...NPM_CI_FLAGS, ...npmPlatformFlags(target)], { cwd: dir });
  await prune(join(dir, 'node_modules'), target);
}

export interface InstallResult {
  readonly key: string;
  /** True when the tree was copied from the cache and npm did not run. */
  readonly fromCache: boolean;
}

/**
 * Puts the target's production `node_modules` into `out`. With `cacheDir`, installs once per key into
 * `<cacheDir>/deps-<target>-<key>` (renamed into place whole, so an interrupted install is never reused) and copies.
 */
export async function installDependencies(
  root: string,
  out: string,
  target: BundleTarget,
  cacheDir: string | undefined,
): Promise<InstallResult> {
  const files = await projectFiles(root);
  const key = installKey(files, target);
  if (cacheDir === undefined) {
    const work = join(out, '.install');
    await installInto(work, files, target);
    await rename(join(work, 'node_modules'), join(out, 'node_modules'));
    await rm(work, { recursive: true, force: true });
    return { key, fromCache: false };
  }
  const cached = join(cacheDir, `deps-${targetName(target)}-${key}`);
  const fromCache = existsSync(join(cached, 'node_modules'));
  if (!fromCache) {
    const work = `${cached}.tmp-${process.pid}`;
    await rm(work, { recursive: true, force: true });
    await installInto(work, files, target);
    await rm(cached, { recursive: true, force: true });
    await rename(work, cached);
  }
  // verbatimSymlinks: node_modules/.bin links stay relative, so the bundle can move.
  await cp(join(cached, 'node_modules'), join(out, 'node_modules'), {
    recursive: true,
    verbatimSymlinks: true,
    preserveTimestamps: true,
  });
  return { key, fromCache };
}

/** The lock file's digest, recorded in BUNDLE.json: which tested dependency set the bundle carries. */
export async function lockDigest(root: string): Promise<string> {
  return createHash('sha256')
    .update(await readFile(join(root, 'package-lock.json')))
    .digest('hex');
}
