import { appendFile, readFile, readdir, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { decodeModel, saveModel } from '../../compiler/onnx/index.js';
import { BackendRegistry, NativeBackend, WasmBackend } from '../../runtime/backends/index.js';
import {
  PROBE_DIMS,
  PROBE_EXPECTED,
  PROBE_INPUT,
  PROBE_INPUT_NAME,
  PROBE_OUTPUT_NAME,
  PROBE_WEIGHTS,
  probeModelBytes,
} from '../../runtime/backends/probe-model.js';
import {
  defaultCacheDir,
  needsProbe,
  probeModeFromEnv,
  probeNative,
  type ProbeTarget,
} from '../../runtime/backends/probe.js';
import { isOutpostError } from '../../runtime/errors.js';
import { loadModel } from '../../runtime/model/load.js';
import { buildMlp } from '../../models/samples.js';
import { tmpDir } from '../helpers/tmp.js';
import { writeFakeBinding } from './probe-fixtures.js';

/** Short enough to keep the suite quick, far longer than a stand-in needs to load (no timing is asserted). */
const HANG_TIMEOUT_MS = 1_500;

/** The real onnxruntime-node of this checkout, as the native backend would probe it. */
function realTarget(): ProbeTarget {
  const entry = createRequire(import.meta.url).resolve('onnxruntime-node');
  return { entry, bindingDir: join(entry, '..', '..', 'bin', 'napi-v6', process.platform, process.arch) };
}

describe('the probe model', () => {
  it('is the MatMul its description says, and x·W is the expected answer', () => {
    const { proto } = decodeModel(probeModelBytes());
    expect(proto.irVersion).toBe(7n);
    expect(proto.opsetImport.map((o) => [o.domain, o.version])).toEqual([['', 13n]]);
    const graph = proto.graph;
    expect(graph?.node.map((n) => [n.opType, n.input, n.output])).toEqual([
      ['MatMul', [PROBE_INPUT_NAME, 'W'], [PROBE_OUTPUT_NAME]],
    ]);
    const w = graph?.initializer[0];
    expect(w?.dims).toEqual([4n, 4n]);
    const raw = w?.rawData ?? new Uint8Array();
    expect(Array.from(new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength)))).toEqual(
      PROBE_WEIGHTS,
    );
    // y[j] = Σ_i x[i]·W[i][j], computed here rather than trusted from the constant.
    const product = [0, 1, 2, 3].map((j) =>
      [0, 1, 2, 3].reduce((sum, i) => sum + (PROBE_INPUT[i] ?? 0) * (PROBE_WEIGHTS[i * 4 + j] ?? 0), 0),
    );
    expect(product).toEqual(PROBE_EXPECTED);
  });

  it('runs in real ONNX Runtime (native) and gives that answer', async () => {
    const session = await ort.InferenceSession.create(probeModelBytes());
    try {
      const out = await session.run({
        [PROBE_INPUT_NAME]: new ort.Tensor('float32', Float32Array.from(PROBE_INPUT), [...PROBE_DIMS]),
      });
      expect(Array.from(out[PROBE_OUTPUT_NAME]?.data as Float32Array)).toEqual(PROBE_EXPECTED);
    } finally {
      await session.release();
    }
  });
});

describe('when to probe', () => {
  it('reads OUTPOST_PROBE_NATIVE', () => {
    expect(probeModeFromEnv({})).toBe('auto');
    expect(probeModeFromEnv({ OUTPOST_PROBE_NATIVE: '1' })).toBe('always');
    expect(probeModeFromEnv({ OUTPOST_PROBE_NATIVE: 'Never' })).toBe('never');
    expect(probeModeFromEnv({ OUTPOST_PROBE_NATIVE: 'maybe' })).toBe('auto');
  });

  it('probes linux-arm64 and other hosts off the known-good list, unless told', () => {
    expect(needsProbe('auto', 'linux', 'x64')).toBe(false);
    expect(needsProbe('auto', 'linux', 'arm64')).toBe(true);
    expect(needsProbe('auto', 'linux', 'riscv64')).toBe(true);
    expect(needsProbe('always', 'linux', 'x64')).toBe(true);
    expect(needsProbe('never', 'linux', 'arm64')).toBe(false);
  });

  it('caches under OUTPOST_CACHE_DIR, else XDG_CACHE_HOME, else ~/.cache', () => {
    expect(defaultCacheDir({ OUTPOST_CACHE_DIR: '/var/lib/outpost/cache' })).toBe('/var/lib/outpost/cache');
    expect(defaultCacheDir({ XDG_CACHE_HOME: '/x' })).toBe(join('/x', 'outpost'));
    expect(defaultCacheDir({ HOME: '/home/pi' })).toMatch(/\.cache[/\\]outpost$/);
  });
});

describe('probeNative', () => {
  it('passes the real onnxruntime-node and caches the verdict by the binary', async () => {
    const cacheDir = await tmpDir();
    const first = await probeNative(realTarget(), { cacheDir });
    expect(first.verdict).toMatchObject({ ok: true });
    expect(first.cached).toBe(false);
    expect(first.cacheFile).toBeDefined();
    const stored = JSON.parse(await readFile(first.cacheFile ?? '', 'utf8')) as {
      identity: { files: { name: string }[]; arch: string };
    };
    expect(stored.identity.arch).toBe(process.arch);
    expect(stored.identity.files.map((f) => f.name)).toContain('onnxruntime_binding.node');

    const second = await probeNative(realTarget(), { cacheDir });
    expect(second).toEqual({ verdict: first.verdict, cached: true, cacheFile: first.cacheFile });
  });

  it('survives a binding that kills its process, names the signal, and caches that', async () => {
    const dir = await tmpDir();
    const fake = await writeFakeBinding(dir, 'crash');
    const cacheDir = join(dir, 'cache');
    const first = await probeNative(fake, { cacheDir });
    expect(first.verdict.ok).toBe(false);
    expect(first.verdict.reason).toMatch(/crashed the probe process with SIGSEGV/);
    expect(first.cached).toBe(false);
    // No core file may be left behind by the deliberate crash.
    expect((await readdir(dir)).filter((f) => f.startsWith('core'))).toEqual([]);

    const second = await probeNative(fake, { cacheDir });
    expect(second.cached).toBe(true);
    expect(second.verdict).toEqual(first.verdict);
  });

  it('probes again when the binary changes (a reinstall, a CUDA provider library arriving)', async () => {
    const dir = await tmpDir();
    const fake = await writeFakeBinding(dir, 'crash');
    const cacheDir = join(dir, 'cache');
    await probeNative(fake, { cacheDir });
    await appendFile(fake.binary, ' rebuilt');
    const afterRebuild = await probeNative(fake, { cacheDir });
    expect(afterRebuild.cached).toBe(false);
    await writeFile(join(fake.bindingDir, 'libonnxruntime_providers_cuda.so'), 'provider');
    expect((await probeNative(fake, { cacheDir })).cached).toBe(false);
    expect(await readdir(cacheDir)).toHaveLength(3);
  });

  it("reports a binding that throws with ONNX Runtime's own message", async () => {
    const dir = await tmpDir();
    const outcome = await probeNative(await writeFakeBinding(dir, 'throws'), { cacheDir: join(dir, 'cache') });
    expect(outcome.verdict.reason).toMatch(/failed in the probe process \(exit 1\): .*cannot open shared object file/);
    expect(outcome.cacheFile).toBeDefined();
  });

  it('refuses a binding that computes a wrong answer', async () => {
    const dir = await tmpDir();
    const outcome = await probeNative(await writeFakeBinding(dir, 'wrong'), { cacheDir: join(dir, 'cache') });
    expect(outcome.verdict.reason).toMatch(/wrong result .*got \[0,0,0,0\], expected \[9,4,7,10\]/);
  });

  it('kills a binding that hangs, and does not cache a verdict about the moment', async () => {
    const dir = await tmpDir();
    const outcome = await probeNative(await writeFakeBinding(dir, 'hangs'), {
      cacheDir: join(dir, 'cache'),
      timeoutMs: HANG_TIMEOUT_MS,
    });
    expect(outcome.verdict.reason).toMatch(/did not finish the probe within 1.5 s \(killed\)/);
    expect(outcome.cacheFile).toBeUndefined();
  });

  it('still answers when the cache cannot be written', async () => {
    const dir = await tmpDir();
    const notADir = join(dir, 'file');
    await writeFile(notADir, '');
    const outcome = await probeNative(await writeFakeBinding(dir, 'works'), { cacheDir: join(notADir, 'cache') });
    expect(outcome.verdict.ok).toBe(true);
    expect(outcome.cacheFile).toBeUndefined();
  });

  it('fails without starting a child when the platform has no binaries', async () => {
    const dir = await tmpDir();
    const outcome = await probeNative(
      { entry: join(dir, 'index.js'), bindingDir: join(dir, 'none') },
      { cacheDir: dir },
    );
    expect(outcome.verdict.reason).toMatch(/has no native binaries for /);
  });
});

describe('the native backend behind the probe', () => {
  it('never loads a crashing binding in-process: init fails with the reason and WASM serves', async () => {
    const dir = await tmpDir();
    const fake = await writeFakeBinding(dir, 'crash');
    const cacheDir = join(dir, 'cache');
    const native = new NativeBackend({ moduleId: fake.entry, probe: { mode: 'always', cacheDir } });
    const error: unknown = await native.init().catch((e: unknown) => e);
    expect(isOutpostError(error, 'BACKEND_UNAVAILABLE')).toBe(true);
    expect((error as Error).message).toMatch(/SIGSEGV \(verdict cached in .*delete it to probe again\)/);

    const modelPath = join(dir, 'mlp.onnx');
    await saveModel(buildMlp().proto, modelPath);
    const registry = new BackendRegistry()
      .register(new NativeBackend({ moduleId: fake.entry, probe: { mode: 'always', cacheDir } }), 100)
      .register(new WasmBackend({ threads: 1 }), 10);
    const model = await loadModel(modelPath, { registry, warmup: 0 });
    try {
      expect(model.backend).toBe('wasm');
      expect(model.fallbackReason).toMatch(/^native: native backend unavailable: .*SIGSEGV/);
    } finally {
      await model.release();
    }
  });

  it('loads a binding that passed its probe', async () => {
    const native = new NativeBackend({ probe: { mode: 'always', cacheDir: await tmpDir() } });
    await native.init();
    expect(native.version).toMatch(/^\d+\.\d+/);
  });
});
