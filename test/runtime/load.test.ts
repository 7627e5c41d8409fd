import { appendFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { saveModel } from '../../compiler/onnx/index.js';
import { buildCnn } from '../../models/samples.js';
import { packArtifact } from '../../runtime/artifact/index.js';
import { BackendRegistry, NativeBackend, WasmBackend, type Backend } from '../../runtime/backends/index.js';
import { OutpostError, isOutpostError } from '../../runtime/errors.js';
import { loadModel } from '../../runtime/model/load.js';
import { readTestVectors } from '../../runtime/model/test-vectors.js';
import { allClose } from '../../runtime/tensor/tensor.js';
import { sampleCnnArtifact } from '../helpers/artifacts.js';
import { REAL_MODELS } from '../helpers/models.js';
import { tmpDir } from '../helpers/tmp.js';

const rejectsWith = (promise: Promise<unknown>, code: Parameters<typeof isOutpostError>[1]) =>
  expect(promise).rejects.toSatisfy((e) => isOutpostError(e, code));

/** A real native backend pointed at a module that is not installed: a genuine failed import. */
const missingNative = () => new NativeBackend({ moduleId: 'onnxruntime-node-that-is-not-installed' });

/**
 * Test double, registered through the registry like any backend: the real native engine, whose session creation
 * fails as it does for a model it cannot run (say, an op missing from a minimal build).
 */
function nativeThatCannotCreateSessions(): Backend {
  const real = new NativeBackend();
  return {
    name: 'native',
    get version() {
      return real.version;
    },
    init: () => real.init(),
    createSession: () =>
      Promise.reject(new OutpostError('SESSION_CREATE_FAILED', 'Could not find an implementation for Conv(11)')),
  };
}

describe('loadModel: sources', () => {
  it('loads a plain .onnx with a synthesised manifest', async () => {
    const model = await loadModel(REAL_MODELS.wakeWord);
    try {
      expect(model.synthesized).toBe(true);
      expect(model.backend).toBe('native');
      expect(model.fallbackReason).toBeUndefined();
      expect(model.inputs).toEqual([{ name: 'onnx::Flatten_0', dtype: 'float32', shape: [1, 25, 96] }]);
      expect(model.manifest.variants[0]?.sha256).toMatch(/^[0-9a-f]{64}$/);
      const out = await model.infer({ 'onnx::Flatten_0': { data: new Float32Array(2400), dims: [1, 25, 96] } });
      expect(out['39']?.dims).toEqual([1, 1]);
    } finally {
      await model.release();
    }
  });

  it('loads an artifact directory and answers its own test vectors within tolerance', async () => {
    const { dir } = await sampleCnnArtifact(await tmpDir());
    const model = await loadModel(dir);
    try {
      expect(model.synthesized).toBe(false);
      expect(model.variant.id).toBe('fp32');
      const [vector] = await readTestVectors(model);
      if (vector === undefined) throw new Error('no test vector');
      const out = await model.infer(vector.inputs);
      const { atol, rtol } = model.manifest.testVectors?.tolerance ?? { atol: 0, rtol: 0 };
      expect(allClose(out.logits?.data ?? [], vector.expected.logits?.data ?? [], atol, rtol).ok).toBe(true);
    } finally {
      await model.release();
    }
  });

  it('loads a .tar.gz artifact and removes its unpacked copy on release', async () => {
    const root = await tmpDir();
    const { dir } = await sampleCnnArtifact(root);
    const tgz = join(root, 'cnn.tar.gz');
    await packArtifact(dir, tgz);
    const model = await loadModel(tgz);
    const unpacked = model.artifactDir ?? '';
    expect(unpacked.startsWith(dir)).toBe(false);
    expect((await readdir(unpacked)).sort()).toContain('manifest.json');
    await model.release();
    await expect(readdir(unpacked)).rejects.toThrow(/ENOENT/);
  });

  it('refuses a tampered artifact before creating any session', async () => {
    const { dir } = await sampleCnnArtifact(await tmpDir());
    await appendFile(join(dir, 'variants/cnn.fp32.onnx'), Buffer.from([0]));
    let sessions = 0;
    const native = new NativeBackend();
    const counting: Backend = {
      name: 'native',
      version: undefined,
      init: () => native.init(),
      createSession: (m, c) => {
        sessions++;
        return native.createSession(m, c);
      },
    };
    await rejectsWith(
      loadModel(dir, { registry: new BackendRegistry().register(counting, 1) }),
      'ARTIFACT_HASH_MISMATCH',
    );
    expect(sessions).toBe(0);
  });

  it('enforces trusted keys: signed by us loads, unsigned or signed by another key does not', async () => {
    const signed = await sampleCnnArtifact(await tmpDir(), { signed: true });
    const other = await sampleCnnArtifact(await tmpDir(), { signed: true });
    const unsigned = await sampleCnnArtifact(await tmpDir());
    const model = await loadModel(signed.dir, { trustedKeys: [signed.keys.publicKeyPem], warmup: 0 });
    await model.release();
    await rejectsWith(
      loadModel(other.dir, { trustedKeys: [signed.keys.publicKeyPem] }),
      'ARTIFACT_SIGNATURE_UNTRUSTED',
    );
    await rejectsWith(
      loadModel(unsigned.dir, { trustedKeys: [signed.keys.publicKeyPem] }),
      'ARTIFACT_SIGNATURE_MISSING',
    );
  });

  it('names a missing file, and calls a non-model file invalid', async () => {
    await rejectsWith(loadModel(join(tmpdir(), 'no-such-model.onnx')), 'FILE_NOT_FOUND');
    const dir = await tmpDir();
    await writeFile(join(dir, 'junk.onnx'), Buffer.from('this is not a protobuf at all'.repeat(10)));
    await rejectsWith(loadModel(join(dir, 'junk.onnx')), 'MODEL_INVALID');
  });
});

describe('loadModel: external data', () => {
  it.each(['native', 'wasm'] as const)(
    'loads a model with external data on %s, and names a missing data file',
    async (backend) => {
      const dir = await tmpDir();
      const path = join(dir, 'cnn.onnx');
      await saveModel(buildCnn().proto, path, { externalData: { location: 'cnn.onnx.data', threshold: 64 } });
      const model = await loadModel(path, { backend, warmup: 0 });
      const out = await model.infer({ image: { data: new Float32Array(3 * 64 * 64).fill(0.5), dims: [1, 3, 64, 64] } });
      expect(out.logits?.dims).toEqual([1, 10]);
      await model.release();
      await rm(join(dir, 'cnn.onnx.data'));
      await rejectsWith(loadModel(path), 'MODEL_EXTERNAL_DATA_MISSING');
    },
  );
});

describe('loadModel: backends and fallback', () => {
  it('falls back to wasm when native cannot load, and says why', async () => {
    const registry = new BackendRegistry().register(missingNative(), 100).register(new WasmBackend({ threads: 1 }), 10);
    const model = await loadModel(REAL_MODELS.wakeWord, { registry });
    try {
      expect(model.backend).toBe('wasm');
      expect(model.fallbackReason).toContain('onnxruntime-node-that-is-not-installed');
      const out = await model.infer({ 'onnx::Flatten_0': { data: new Float32Array(2400), dims: [1, 25, 96] } });
      expect(out['39']?.dims).toEqual([1, 1]);
    } finally {
      await model.release();
    }
  });

  it('falls back to wasm when native loads but cannot create the session', async () => {
    const registry = new BackendRegistry()
      .register(nativeThatCannotCreateSessions(), 100)
      .register(new WasmBackend({ threads: 1 }), 10);
    const { dir } = await sampleCnnArtifact(await tmpDir());
    const model = await loadModel(dir, { registry });
    try {
      expect(model.backend).toBe('wasm');
      expect(model.fallbackReason).toMatch(/native \(fp32\): Could not find an implementation/);
    } finally {
      await model.release();
    }
  });

  it('does not fall back when a backend is named', async () => {
    const registry = new BackendRegistry().register(missingNative(), 100).register(new WasmBackend({ threads: 1 }), 10);
    await rejectsWith(loadModel(REAL_MODELS.wakeWord, { registry, backend: 'native' }), 'SESSION_CREATE_FAILED');
  });

  it('picks the best-ranked variant the serving backend can run', async () => {
    const { dir } = await sampleCnnArtifact(await tmpDir(), { variantBackends: [['native'], ['wasm']] });
    const native = await loadModel(dir, { warmup: 0 });
    const wasm = await loadModel(dir, { backend: 'wasm', warmup: 0 });
    expect([native.backend, native.variant.id]).toEqual(['native', 'fp32']);
    expect([wasm.backend, wasm.variant.id]).toEqual(['wasm', 'fp32-copy']);
    await Promise.all([native.release(), wasm.release()]);
    await rejectsWith(loadModel(dir, { variant: 'int8' }), 'VARIANT_NOT_FOUND');
  });
});

describe('Model.infer', () => {
  it('validates names, dtypes and shapes before ONNX Runtime sees them', async () => {
    const model = await loadModel(REAL_MODELS.wakeWord, { warmup: 0 });
    const name = 'onnx::Flatten_0';
    try {
      await rejectsWith(model.infer({}), 'INPUT_MISSING');
      await rejectsWith(
        model.infer({
          [name]: { data: new Float32Array(2400), dims: [1, 25, 96] },
          x: { data: new Float32Array(1), dims: [1] },
        }),
        'INPUT_NAME_UNKNOWN',
      );
      await rejectsWith(
        model.infer({ [name]: { data: new Float64Array(2400), dims: [1, 25, 96] } }),
        'INPUT_DTYPE_MISMATCH',
      );
      await rejectsWith(
        model.infer({ [name]: { data: new Float32Array(2400), dims: [1, 96, 25] } }),
        'INPUT_SHAPE_MISMATCH',
      );
      // Still serving after bad calls.
      const out = await model.infer({ [name]: { data: new Float32Array(2400), dims: [1, 25, 96] } });
      expect(out['39']?.dims).toEqual([1, 1]);
    } finally {
      await model.release();
    }
  });

  it('binds symbolic dimensions from --input-shape style options', async () => {
    const model = await loadModel(REAL_MODELS.sileroLegacy, { shapes: { input: [1, 512] }, warmup: 0 });
    try {
      expect(model.inputs.find((i) => i.name === 'input')?.shape).toEqual([1, 512]);
      expect(model.inputs.find((i) => i.name === 'h')?.shape).toEqual([2, 1, 64]);
      const feeds = {
        input: { data: new Float32Array(512), dims: [1, 512] },
        sr: { data: BigInt64Array.of(16000n), dims: [] },
        h: { data: new Float32Array(128), dims: [2, 1, 64] },
        c: { data: new Float32Array(128), dims: [2, 1, 64] },
      };
      const out = await model.infer(feeds);
      expect(out.output?.dims).toEqual([1, 1]);
      await rejectsWith(
        model.infer({ ...feeds, input: { data: new Float32Array(256), dims: [1, 256] } }),
        'INPUT_SHAPE_MISMATCH',
      );
    } finally {
      await model.release();
    }
  });

  it('refuses calls after release', async () => {
    const model = await loadModel(REAL_MODELS.wakeWord, { warmup: 0 });
    await model.release();
    await model.release();
    await rejectsWith(model.infer({}), 'MODEL_RELEASED');
  });
});

describe('Model.release', () => {
  it('waits for in-flight calls to finish, refuses new ones at once, and frees the session after the last', async () => {
    const model = await loadModel(REAL_MODELS.wakeWord, { warmup: 0 });
    const name = 'onnx::Flatten_0';
    const feeds = { [name]: { data: new Float32Array(2400), dims: [1, 25, 96] } };
    const order: string[] = [];
    const calls = Array.from({ length: 4 }, async () => {
      const out = await model.infer(feeds);
      order.push('infer');
      return out['39']?.dims;
    });
    const released = model.release().then(() => order.push('release'));
    await expect(model.infer(feeds)).rejects.toMatchObject({ code: 'MODEL_RELEASED' });
    const outputs = await Promise.all(calls);
    await released;
    expect(outputs).toEqual([
      [1, 1],
      [1, 1],
      [1, 1],
      [1, 1],
    ]);
    expect(order).toEqual(['infer', 'infer', 'infer', 'infer', 'release']);
    expect(model.released).toBe(true);
    await model.release(); // idempotent
  });
});
