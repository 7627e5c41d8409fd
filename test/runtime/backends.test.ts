import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  BackendRegistry,
  NativeBackend,
  WasmBackend,
  type Backend,
  type BackendSession,
} from '../../runtime/backends/index.js';
import { isOutpostError } from '../../runtime/errors.js';
import { seededRandom } from '../../runtime/tensor/tensor.js';
import { REAL_MODELS } from '../helpers/models.js';
import { tmpDir } from '../helpers/tmp.js';

const ATOL = 1e-5;

function wakeWordInput(): Float32Array {
  const random = seededRandom(7);
  return Float32Array.from({ length: 25 * 96 }, () => random() * 2 - 1);
}

/** The same contract, run against every shipped backend (MQTT.js's abstract_store pattern). */
describe.each([
  ['native', () => new NativeBackend()],
  ['wasm', () => new WasmBackend({ threads: 1 })],
] as const)('%s backend', (name, make) => {
  let backend: Backend;
  let session: BackendSession;

  beforeAll(async () => {
    backend = make();
    await backend.init();
    session = await backend.createSession(REAL_MODELS.wakeWord, { ortLogLevel: 'error' });
  });
  afterAll(() => session.release());

  it('reports its name, version and the model inputs and outputs', () => {
    expect(backend.name).toBe(name);
    expect(backend.version).toMatch(/^\d+\.\d+/);
    expect(session.inputs).toEqual([{ name: 'onnx::Flatten_0', dtype: 'float32', shape: [1, 25, 96] }]);
    expect(session.outputs).toEqual([{ name: '39', dtype: 'float32', shape: [1, 1] }]);
  });

  it('runs and returns a tensor of the declared shape', async () => {
    const out = await session.run({ 'onnx::Flatten_0': session.tensor('float32', wakeWordInput(), [1, 25, 96]) });
    const score = out['39'];
    expect(score?.dims).toEqual([1, 1]);
    expect(score?.type).toBe('float32');
    expect((score?.data as Float32Array)[0]).toBeGreaterThanOrEqual(0);
  });

  it('names unnamed dynamic dimensions after the tensor and axis', async () => {
    const s = await backend.createSession(REAL_MODELS.sileroV5, {});
    try {
      expect(s.inputs.map((i) => i.shape)).toEqual([['input[0]', 'input[1]'], [2, 'state[1]', 128], []]);
    } finally {
      await s.release();
    }
  });

  it('refuses a file that is not a model with SESSION_CREATE_FAILED', async () => {
    const dir = await tmpDir();
    const bogus = join(dir, 'bogus.onnx');
    await import('node:fs/promises').then((fs) => fs.writeFile(bogus, 'definitely not protobuf'));
    await expect(backend.createSession(bogus, {})).rejects.toSatisfy((e) => isOutpostError(e, 'SESSION_CREATE_FAILED'));
  });

  it('loads from bytes as from a path', async () => {
    const s = await backend.createSession(await readFile(REAL_MODELS.wakeWord), {});
    await s.release();
  });
});

describe('backends agree', () => {
  it('native and wasm give the same wake-word score within tolerance', async () => {
    const results: number[] = [];
    for (const backend of [new NativeBackend(), new WasmBackend({ threads: 1 })]) {
      await backend.init();
      const s = await backend.createSession(REAL_MODELS.wakeWord, {});
      const out = await s.run({ 'onnx::Flatten_0': s.tensor('float32', wakeWordInput(), [1, 25, 96]) });
      results.push((out['39']?.data as Float32Array)[0] ?? NaN);
      await s.release();
    }
    expect(Math.abs((results[0] ?? 0) - (results[1] ?? 1))).toBeLessThan(ATOL);
  });
});

describe('BackendRegistry', () => {
  /** A real native backend pointed at a module that does not exist: a genuine failed import, no mock. */
  const missingNative = () => new NativeBackend({ moduleId: 'onnxruntime-node-that-is-not-installed' });

  it('orders by priority and initialises lazily, once', async () => {
    let inits = 0;
    const wasm = new WasmBackend({ threads: 1 });
    const counting: Backend = {
      name: 'wasm',
      get version() {
        return wasm.version;
      },
      init: () => {
        inits++;
        return wasm.init();
      },
      createSession: (m, c) => wasm.createSession(m, c),
    };
    const registry = new BackendRegistry().register(counting, 1).register(new NativeBackend(), 100);
    expect(registry.names()).toEqual(['native', 'wasm']);
    expect(inits).toBe(0);
    await Promise.all([registry.get('wasm'), registry.get('wasm'), registry.get('wasm')]);
    expect(inits).toBe(1);
  });

  it('skips a backend that fails to initialise and reports why', async () => {
    const registry = new BackendRegistry().register(missingNative(), 100).register(new WasmBackend({ threads: 1 }), 10);
    const { backend, skipped } = await registry.resolve();
    expect(backend.name).toBe('wasm');
    expect(skipped).toHaveLength(1);
    expect(skipped[0]?.name).toBe('native');
    expect(skipped[0]?.reason).toContain('onnxruntime-node-that-is-not-installed');
  });

  it('reports every failure in one error when nothing can start', async () => {
    const registry = new BackendRegistry()
      .register(missingNative(), 100)
      .register(new WasmBackend({ moduleId: 'onnxruntime-web-that-is-not-installed' }), 10);
    await expect(registry.resolve()).rejects.toSatisfy(
      (e) => isOutpostError(e, 'BACKEND_UNAVAILABLE') && /native: .*wasm: /.test((e as Error).message),
    );
  });

  it('names the registered backends when asked for an unknown one', async () => {
    const registry = new BackendRegistry().register(new NativeBackend(), 1);
    await expect(registry.get('wasm')).rejects.toThrow(/registered: native/);
  });
});
