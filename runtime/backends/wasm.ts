import { readFile, readdir } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { dirname, join } from 'node:path';
import { OutpostError, messageOf } from '../errors.js';
import { logger } from '../log.js';
import { createOrtSession, sessionOptions, type OrtModule } from './ort-session.js';
import type { Backend, BackendSession, SessionConfig } from './types.js';

const log = logger('backend.wasm');

export interface WasmBackendOptions {
  /**
   * WASM threads for all sessions of this process. ONNX Runtime Web fixes the thread pool when the WASM module is
   * instantiated, so the first session decides; later differing requests are ignored (and logged).
   */
  readonly threads?: number;
  readonly moduleId?: string;
}

/** onnxruntime-web's CPU (WASM + SIMD) backend: slower, but runs wherever Node runs. */
export class WasmBackend implements Backend {
  readonly name = 'wasm' as const;
  private ort: OrtModule | undefined;
  private threads = 0;

  constructor(private readonly options: WasmBackendOptions = {}) {}

  get version(): string | undefined {
    return this.ort?.env.versions.web;
  }

  async init(): Promise<void> {
    const moduleId = this.options.moduleId ?? 'onnxruntime-web';
    try {
      this.ort = (await import(moduleId)) as OrtModule;
    } catch (error) {
      throw new OutpostError(
        'BACKEND_UNAVAILABLE',
        `wasm backend unavailable: cannot load ${moduleId}: ${messageOf(error)}`,
        {
          cause: error,
        },
      );
    }
    this.threads = this.options.threads ?? Math.min(4, availableParallelism());
    const wasm = this.ort.env.wasm;
    wasm.numThreads = this.threads;
    // In Node there is no UI thread to keep free: proxying to a worker only adds a message hop per call.
    wasm.proxy = false;
  }

  async createSession(model: string | Uint8Array, config: SessionConfig): Promise<BackendSession> {
    if (this.ort === undefined) throw new OutpostError('INTERNAL', 'wasm backend used before init()');
    if (config.threads !== undefined && config.threads > 0 && config.threads !== this.threads) {
      log.debug({ requested: config.threads, fixed: this.threads }, 'wasm thread count is fixed per process');
    }
    const options = sessionOptions({ ...config, threads: undefined }, ['wasm']);
    if (typeof model === 'string') {
      const externalData = await externalDataFiles(model);
      if (externalData.length > 0) options.externalData = externalData;
    }
    return createOrtSession('wasm', this.ort, model, options);
  }
}

/**
 * onnxruntime-web has no filesystem: a model's external data files must be handed to it (`externalData`), keyed by
 * the `location` the model records. Without parsing the model (the runtime has no ONNX reader), a sibling file whose
 * name appears in the model's bytes is what a `location` entry looks like; those are passed in.
 */
async function externalDataFiles(path: string): Promise<{ path: string; data: Uint8Array }[]> {
  const dir = dirname(path);
  const siblings = (await readdir(dir, { withFileTypes: true })).filter(
    (e) => e.isFile() && join(dir, e.name) !== path,
  );
  if (siblings.length === 0) return [];
  const bytes = await readFile(path);
  const files: { path: string; data: Uint8Array }[] = [];
  for (const sibling of siblings) {
    if (bytes.includes(Buffer.from(sibling.name)))
      files.push({ path: sibling.name, data: await readFile(join(dir, sibling.name)) });
  }
  return files;
}
