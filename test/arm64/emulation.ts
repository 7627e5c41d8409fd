import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';

/**
 * What running arm64 Linux binaries on this x86-64 host takes, each with the Debian package that provides it
 * (.ci/run installs them). binfmt_misc matters beyond the first process: the native backend's probe starts a child
 * `node`, an arm64 executable, which the kernel runs through qemu only when the handler is registered.
 */
const REQUIREMENTS = Object.freeze([
  {
    what: 'an x86-64 Linux host (elsewhere this test does not apply)',
    ok: () => process.platform === 'linux' && process.arch === 'x64',
  },
  {
    what: 'qemu-aarch64-static (apt-get install qemu-user-static)',
    ok: () => spawnSync('sh', ['-c', 'command -v qemu-aarch64-static']).status === 0,
  },
  {
    what: 'the arm64 C library, /lib/ld-linux-aarch64.so.1 (dpkg --add-architecture arm64; apt-get install libc6:arm64)',
    ok: () => existsSync('/lib/ld-linux-aarch64.so.1'),
  },
  {
    what: 'the arm64 C++ library (apt-get install libstdc++6:arm64)',
    ok: () => existsSync('/usr/lib/aarch64-linux-gnu/libstdc++.so.6'),
  },
  {
    what: 'the qemu-aarch64 binfmt_misc handler (/proc/sys/fs/binfmt_misc/qemu-aarch64; .ci/run registers it)',
    ok: () => {
      const file = '/proc/sys/fs/binfmt_misc/qemu-aarch64';
      return existsSync(file) && readFileSync(file, 'utf8').startsWith('enabled');
    },
  },
]);

/** What is missing for arm64 emulation, empty when everything is there. */
export function missingForEmulation(): string[] {
  return REQUIREMENTS.filter((r) => !r.ok()).map((r) => r.what);
}
