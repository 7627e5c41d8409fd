import { spawn } from 'node:child_process';
import { OutpostError } from '../runtime/errors.js';

/**
 * What a bundle is built for, and the commands that build it. Shared by the bundle steps (bundle-deps.ts,
 * bundle-node.ts) and by scripts/bundle.ts, which the Dockerfile also runs: one definition of the target.
 */

/** Node's `process.arch` names; Docker's `TARGETARCH` and uname's names are accepted as aliases. */
export const ARCHES = Object.freeze({ arm64: 'arm64', aarch64: 'arm64', x64: 'x64', amd64: 'x64', x86_64: 'x64' });
export type Arch = (typeof ARCHES)[keyof typeof ARCHES];

export const LIBCS = Object.freeze(['glibc', 'musl'] as const);
export type Libc = (typeof LIBCS)[number];

export interface BundleTarget {
  readonly os: 'linux';
  readonly arch: Arch;
  /** Raspberry Pi OS, JetPack (Ubuntu) and the node:*-slim images are glibc; Alpine is musl. */
  readonly libc: Libc;
}

export function parseArch(value: string): Arch {
  const arch = (ARCHES as Readonly<Record<string, Arch>>)[value.toLowerCase()];
  if (arch === undefined) {
    throw new OutpostError('INVALID_ARGUMENT', `--arch ${value}: expected one of ${Object.keys(ARCHES).join(', ')}`, {
      details: { arch: value, accepted: Object.keys(ARCHES) },
    });
  }
  return arch;
}

export function parseLibc(value: string): Libc {
  const libc = LIBCS.find((l) => l === value);
  if (libc === undefined)
    throw new OutpostError('INVALID_ARGUMENT', `--libc ${value}: expected one of ${LIBCS.join(', ')}`);
  return libc;
}

export function targetName(target: BundleTarget): string {
  return `${target.os}-${target.arch}-${target.libc}`;
}

/**
 * npm's own platform selection: with `--os/--cpu/--libc` it installs the optional dependencies (sharp's
 * `@img/sharp-linux-arm64`, …) of the target instead of this host's, and checks every package's `os`/`cpu` against it.
 */
export function npmPlatformFlags(target: BundleTarget): string[] {
  return [`--os=${target.os}`, `--cpu=${target.arch}`, `--libc=${target.libc}`];
}

/** Lines of a command's stderr kept for the error message. */
const STDERR_TAIL_LINES = 15;

/** Runs a command to completion; stdout is returned, stderr streams through unless `quiet`. */
export function run(
  command: string,
  args: readonly string[],
  options: { cwd?: string; quiet?: boolean; env?: NodeJS.ProcessEnv } = {},
): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd: options.cwd,
      env: { ...process.env, ...options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
      if (options.quiet !== true) process.stderr.write(chunk);
    });
    const fail = (why: string, cause?: unknown) => {
      const tail = stderr.trim().split('\n').slice(-STDERR_TAIL_LINES).join('\n');
      reject(
        new OutpostError('BUNDLE_FAILED', `${command} ${args.join(' ')}: ${why}${tail ? `\n${tail}` : ''}`, {
          cause,
          details: { command, args },
        }),
      );
    };
    child.on('error', (error) => fail(error.message, error));
    child.on('close', (code, signal) => {
      if (code === 0) resolve(stdout);
      else fail(signal === null ? `exit ${code ?? '?'}` : `killed by ${signal}`);
    });
  });
}
