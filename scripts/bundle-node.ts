import { existsSync } from 'node:fs';
import { chmod, copyFile, mkdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import * as tar from 'tar';
import { OutpostError } from '../runtime/errors.js';
import { run, type BundleTarget } from './bundle-target.js';

/**
 * The Node.js runtime for the target, from the npm registry's `node-<os>-<arch>` packages (the official release
 * binaries, repackaged): for a device whose distribution ships an older Node (Raspberry Pi OS 12 has Node 18), and
 * for running the bundle under qemu-user on an x86 build host (test/arm64/).
 *
 * Not a devDependency: those packages declare `"cpu": ["arm64"]`, so `npm ci` on an x86 machine refuses them
 * (EBADPLATFORM). `npm pack` fetches the tarball (integrity-checked) without installing it.
 */
export const NODE_RUNTIME = Object.freeze({
  /** Node 20, as package.json's engines asks (>= 20.19); the version CI runs on x86. */
  version: '20.20.2',
  package: (target: BundleTarget) => `node-${target.os}-${target.arch}`,
});

/** `<cacheDir>/node-<os>-<arch>-<version>/bin/node`, fetched once. */
async function cachedNode(target: BundleTarget, cacheDir: string): Promise<string> {
  const spec = `${NODE_RUNTIME.package(target)}@${NODE_RUNTIME.version}`;
  const dir = join(cacheDir, `${NODE_RUNTIME.package(target)}-${NODE_RUNTIME.version}`);
  const binary = join(dir, 'bin', 'node');
  if (existsSync(binary)) return binary;
  const work = `${dir}.tmp-${process.pid}`;
  await rm(work, { recursive: true, force: true });
  await mkdir(work, { recursive: true });
  const packed = JSON.parse(
    await run('npm', ['pack', spec, '--json', '--pack-destination', work], { quiet: true }),
  ) as {
    filename: string;
  }[];
  const filename = packed[0]?.filename;
  if (filename === undefined) throw new OutpostError('BUNDLE_FAILED', `npm pack ${spec} reported no file`);
  await tar.x({ file: join(work, filename), cwd: work, strip: 1, filter: (path) => path === 'package/bin/node' });
  await rm(join(work, filename));
  await rm(dir, { recursive: true, force: true });
  await rename(work, dir);
  return binary;
}

/** Where the bundled runtime lands, relative to the bundle root. */
export const BUNDLED_NODE = join('node', 'bin', 'node');

/** Copies the target's `node` into `<out>/node/bin/node`; returns the version placed. */
export async function addNodeRuntime(out: string, target: BundleTarget, cacheDir: string): Promise<string> {
  const binary = await cachedNode(target, cacheDir);
  const dest = join(out, BUNDLED_NODE);
  await mkdir(join(out, 'node', 'bin'), { recursive: true });
  await copyFile(binary, dest);
  await chmod(dest, 0o755);
  return NODE_RUNTIME.version;
}
