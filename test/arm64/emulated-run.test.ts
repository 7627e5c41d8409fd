import { execFile } from 'node:child_process';
import { existsSync, openSync, readSync, closeSync } from 'node:fs';
import { readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { saveModel } from '../../compiler/onnx/index.js';
import { buildMlp } from '../../models/samples.js';
import { allClose } from '../../runtime/tensor/tensor.js';
import { runCli, type CliResult } from '../helpers/cli.js';
import { ROOT } from '../helpers/models.js';
import { suiteTmpDir } from '../helpers/tmp.js';
import { missingForEmulation } from './emulation.js';

/**
 * The arm64 bundle, built on this x86 host by `npm run bundle` exactly as a user would (and as Dockerfile.arm64
 * does), run under qemu-user with its own arm64 Node: what a Pi would run, minus the Pi. onnxruntime-node's arm64
 * binding segfaults at load under qemu-user, so this is also the end-to-end test of the native backend's crash probe
 * and the fallback to WASM.
 *
 * The bundle's dependencies are installed once per package-lock (cached in node_modules/.cache/outpost-bundle), so
 * after the first run this suite costs a tsup build, a copy and one emulated `outpost run` (a tiny MLP).
 */
const missing = missingForEmulation();
if (missing.length > 0)
  process.stderr.write(`test/arm64: arm64 emulation unavailable, skipping; missing: ${missing.join('; ')}\n`);

/** The first bundle installs ≈160 packages from the registry and fetches Node; later ones copy from the cache. */
const BUNDLE_TIMEOUT_MS = 600_000;
/** Node, the CLI and onnxruntime-web's WASM compilation, all under qemu's instruction translation on 2 shared cores. */
const EMULATED_RUN_TIMEOUT_MS = 300_000;
/** The same variant on two backends: only kernel-level rounding may differ. */
const BACKEND_TOLERANCE = Object.freeze({ atol: 1e-4, rtol: 1e-3 });
/** ELF header e_machine for AArch64 (ELF spec, "Machine architectures": EM_AARCH64 = 183). */
const EM_AARCH64 = 183;
const DEV_ONLY_PACKAGES = Object.freeze(['typescript', 'tsup', 'tsx', 'vitest', 'eslint', 'prettier']);

interface RunJson {
  variant: string;
  backend: string;
  fallbackReason?: string;
  outputs: Record<string, { shape: number[]; data: number[] }>;
}

interface BundleReport {
  target: { arch: string; libc: string };
  node: string | null;
  sizes: { totalBytes: number; parts: { name: string; bytes: number }[] };
}

function elfMachine(file: string): number {
  const fd = openSync(file, 'r');
  try {
    const header = Buffer.alloc(20);
    readSync(fd, header, 0, 20, 0);
    return header.readUInt16LE(18);
  } finally {
    closeSync(fd);
  }
}

function exec(file: string, args: readonly string[], env: NodeJS.ProcessEnv, timeoutMs: number): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(
      file,
      args,
      { cwd: ROOT, env: { ...process.env, ...env }, timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === 'number' ? error.code : 1;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

describe.skipIf(missing.length > 0)(
  missing.length > 0
    ? `arm64 bundle under emulation (skipped: missing ${missing.join('; ')})`
    : 'arm64 bundle under emulation',
  () => {
    let tmp: { dir: string; dispose: () => Promise<void> };
    let bundle: string;
    let report: BundleReport;
    let artifact: string;
    let input: string;
    const cacheDir = () => join(tmp.dir, 'probe-cache');

    beforeAll(async () => {
      tmp = await suiteTmpDir('outpost-arm64-');
      bundle = join(tmp.dir, 'bundle');
      const built = await exec(
        process.execPath,
        [
          '--import',
          'tsx',
          join(ROOT, 'scripts', 'bundle.ts'),
          '--arch',
          'arm64',
          '--out',
          bundle,
          '--with-node',
          '--json',
        ],
        {},
        BUNDLE_TIMEOUT_MS,
      );
      expect(built.code, built.stderr.slice(-2000)).toBe(0);
      report = JSON.parse(built.stdout) as BundleReport;
      process.stderr.write(
        `test/arm64: bundle ${(report.sizes.totalBytes / 2 ** 20).toFixed(1)} MiB: ${report.sizes.parts
          .map((p) => `${p.name} ${(p.bytes / 2 ** 20).toFixed(1)}`)
          .join(', ')}\n`,
      );

      const model = join(tmp.dir, 'mlp.onnx');
      await saveModel(buildMlp().proto, model);
      artifact = join(tmp.dir, 'mlp-arm64');
      const compiled = await runCli(['compile', model, '--target', 'arm64:cortex-a72', '-o', artifact, '--json']);
      expect(compiled.code, compiled.stderr).toBe(0);
      input = join(tmp.dir, 'input.json');
      const data = Array.from({ length: 16 }, (_, i) => Math.sin(i + 1));
      await writeFile(input, JSON.stringify({ shape: [1, 16], datatype: 'FP32', data }));
    }, BUNDLE_TIMEOUT_MS + 120_000);
    afterAll(() => tmp.dispose());

    it('holds dist/, a package.json whose bin runs the CLI, and linux-arm64 binaries only', async () => {
      expect(report.target).toMatchObject({ arch: 'arm64', libc: 'glibc' });
      const pkg = JSON.parse(await readFile(join(bundle, 'package.json'), 'utf8')) as {
        name: string;
        bin: Record<string, string>;
        devDependencies?: unknown;
      };
      expect(pkg.name).toBe('outpost');
      expect(pkg.bin).toEqual({ outpost: 'dist/cli/main.js' });
      expect(pkg.devDependencies).toBeUndefined();
      expect(existsSync(join(bundle, 'dist', 'cli', 'main.js'))).toBe(true);

      const modules = join(bundle, 'node_modules');
      const ortBin = join(modules, 'onnxruntime-node', 'bin', 'napi-v6');
      expect(await readdir(ortBin)).toEqual(['linux']);
      expect(await readdir(join(ortBin, 'linux'))).toEqual(['arm64']);
      expect(elfMachine(join(ortBin, 'linux', 'arm64', 'onnxruntime_binding.node'))).toBe(EM_AARCH64);
      const img = await readdir(join(modules, '@img'));
      expect(img.filter((p) => p.startsWith('sharp-'))).toEqual(['sharp-libvips-linux-arm64', 'sharp-linux-arm64']);
      expect(await readdir(join(modules, 'aws-crt', 'dist', 'bin'))).toEqual(['linux-arm64-glibc']);
      expect(elfMachine(join(bundle, 'node', 'bin', 'node'))).toBe(EM_AARCH64);
      for (const dev of DEV_ONLY_PACKAGES) expect(existsSync(join(modules, dev)), dev).toBe(false);
    });

    it(
      'answers `outpost run` on an arm64 artifact as x86 does, through WASM, saying why',
      async () => {
        const x86 = await runCli(['run', artifact, '--input', input, '--json']);
        expect(x86.code, x86.stderr).toBe(0);
        const reference = JSON.parse(x86.stdout) as RunJson;
        expect(reference.backend).toBe('native');

        const started = performance.now();
        const emulated = await exec(
          'qemu-aarch64-static',
          [
            join(bundle, 'node', 'bin', 'node'),
            join(bundle, 'dist', 'cli', 'main.js'),
            'run',
            artifact,
            '--input',
            input,
            '--json',
          ],
          { OUTPOST_CACHE_DIR: cacheDir() },
          EMULATED_RUN_TIMEOUT_MS,
        );
        const seconds = (performance.now() - started) / 1000;
        process.stderr.write(`test/arm64: emulated outpost run took ${seconds.toFixed(1)} s (sanity figure)\n`);
        expect(emulated.code, emulated.stderr.slice(-2000)).toBe(0);
        const answer = JSON.parse(emulated.stdout) as RunJson;

        expect(answer.backend).toBe('wasm');
        expect(answer.fallbackReason).toMatch(
          /^native: native backend unavailable: .*crashed the probe process with SIGSEGV/,
        );
        expect(answer.variant).toBe(reference.variant);
        const [name] = Object.keys(reference.outputs);
        const got = answer.outputs[name ?? ''];
        const want = reference.outputs[name ?? ''];
        expect(got?.shape).toEqual(want?.shape);
        const close = allClose(
          Float32Array.from(got?.data ?? []),
          Float32Array.from(want?.data ?? []),
          BACKEND_TOLERANCE.atol,
          BACKEND_TOLERANCE.rtol,
        );
        expect(close.ok, JSON.stringify(close)).toBe(true);
      },
      EMULATED_RUN_TIMEOUT_MS + 60_000,
    );

    it("cached the verdict with the arm64 binary's identity, so the next start does not probe", async () => {
      const files = await readdir(cacheDir());
      expect(files).toHaveLength(1);
      const cached = JSON.parse(await readFile(join(cacheDir(), files[0] ?? ''), 'utf8')) as {
        identity: { arch: string; node: string; bindingDir: string; files: { name: string }[] };
        verdict: { ok: boolean; reason: string; durationMs: number };
      };
      expect(cached.identity.arch).toBe('arm64');
      expect(cached.identity.node).toBe(`v${report.node ?? ''}`);
      expect(cached.identity.bindingDir).toBe(
        join(bundle, 'node_modules', 'onnxruntime-node', 'bin', 'napi-v6', 'linux', 'arm64'),
      );
      expect(cached.identity.files.map((f) => f.name)).toEqual(['libonnxruntime.so.1', 'onnxruntime_binding.node']);
      expect(cached.verdict).toMatchObject({
        ok: false,
        reason: 'onnxruntime-node crashed the probe process with SIGSEGV',
      });
      process.stderr.write(`test/arm64: probe verdict took ${cached.verdict.durationMs} ms under emulation\n`);
    });
  },
);
