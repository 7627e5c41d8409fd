import { OutpostError, messageOf } from '../errors.js';
import { logger } from '../log.js';
import { createOrtSession, sessionOptions, type OrtModule } from './ort-session.js';
import type { Backend, BackendSession, SessionConfig } from './types.js';

const log = logger('backend.native');

interface NativeModule extends OrtModule {
  listSupportedBackends?: () => readonly { name: string; bundled: boolean }[];
}

export interface NativeBackendOptions {
  /** Module to load; tests point it elsewhere to exercise fallback with a real failed import. */
  readonly moduleId?: string;
}

/** onnxruntime-node: the hot path. CPU always; CUDA/TensorRT when the installed build carries them. */
export class NativeBackend implements Backend {
  readonly name = 'native' as const;
  private ort: NativeModule | undefined;
  private providers: ReadonlySet<string> = new Set(['cpu']);

  constructor(private readonly options: NativeBackendOptions = {}) {}

  get version(): string | undefined {
    return this.ort?.env.versions.node;
  }

  async init(): Promise<void> {
    const moduleId = this.options.moduleId ?? 'onnxruntime-node';
    try {
      this.ort = (await import(moduleId)) as NativeModule;
    } catch (error) {
      throw new OutpostError(
        'BACKEND_UNAVAILABLE',
        `native backend unavailable: cannot load ${moduleId}: ${messageOf(error)}`,
        {
          cause: error,
        },
      );
    }
    const listed = this.ort.listSupportedBackends?.() ?? [{ name: 'cpu', bundled: true }];
    this.providers = new Set(listed.map((b) => b.name));
    log.debug({ providers: [...this.providers] }, 'native backend ready');
  }

  async createSession(model: string | Uint8Array, config: SessionConfig): Promise<BackendSession> {
    if (this.ort === undefined) throw new OutpostError('INTERNAL', 'native backend used before init()');
    const wanted = config.executionProviders ?? ['cpu'];
    const providers = wanted.filter((ep) => this.providers.has(ep));
    const dropped = wanted.filter((ep) => !this.providers.has(ep));
    if (dropped.length > 0)
      log.info({ dropped, using: providers }, 'execution providers not in this onnxruntime-node build');
    // CPU is always the last resort inside the native backend, as ONNX Runtime itself assigns leftover nodes to it.
    if (!providers.includes('cpu')) providers.push('cpu');
    return createOrtSession('native', this.ort, model, sessionOptions(config, providers));
  }
}
