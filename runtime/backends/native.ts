import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { arch, platform } from 'node:os';
import { dirname, join } from 'node:path';
import { OutpostError, messageOf } from '../errors.js';
import { logger } from '../log.js';
import { createOrtSession, sessionOptions, type OrtModule } from './ort-session.js';
import { needsProbe, probeModeFromEnv, probeNative, type NativeProbeOptions } from './probe.js';
import type { Backend, BackendSession, SessionConfig } from './types.js';

const log = logger('backend.native');

interface NativeModule extends OrtModule {
  listSupportedBackends?: () => readonly { name: string; bundled: boolean }[];
}

/** Where onnxruntime-node keeps this platform's binaries: `bin/napi-v6/<platform>/<arch>` beside `dist/`. */
function bindingDirOf(entry: string): string {
  return join(dirname(entry), '..', 'bin', 'napi-v6', platform(), arch());
}

function providerLibraryPresent(dir: string | undefined, provider: string): boolean {
  return dir !== undefined && existsSync(join(dir, `libonnxruntime_providers_${provider}.so`));
}

export interface NativeBackendOptions {
  /** Module to load; tests point it elsewhere to exercise fallback with a real failed import. */
  readonly moduleId?: string;
  /** The crash probe run before the first load on hosts not known to be safe (probe.ts). */
  readonly probe?: NativeProbeOptions;
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
    await this.probe(moduleId);
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
    // "bundled: false" providers (CUDA, TensorRT) exist only when their libraries were installed alongside the
    // binding (ONNXRUNTIME_NODE_INSTALL=cuda12); asking for a missing one fails session creation and logs noise.
    const bindingDir = this.bindingDir();
    this.providers = new Set(
      listed.filter((b) => b.bundled || providerLibraryPresent(bindingDir, b.name)).map((b) => b.name),
    );
    log.debug({ providers: [...this.providers] }, 'native backend ready');
  }

  /**
   * Before this process loads the binding, where a crash is possible: a binding that dies by a signal in the probe's
   * child process would take this process down too, so it is never loaded here and the registry falls back.
   */
  private async probe(moduleId: string): Promise<void> {
    if (!needsProbe(this.options.probe?.mode ?? probeModeFromEnv())) return;
    const entry = this.entry(moduleId);
    // Not installed: the import below fails with the clearer message.
    if (entry === undefined) return;
    const outcome = await probeNative({ entry, bindingDir: bindingDirOf(entry) }, this.options.probe);
    const { verdict } = outcome;
    if (verdict.ok) return;
    const where =
      outcome.cacheFile === undefined ? '' : ` (verdict cached in ${outcome.cacheFile}; delete it to probe again)`;
    throw new OutpostError(
      'BACKEND_UNAVAILABLE',
      `native backend unavailable: ${verdict.reason ?? 'probe failed'}${where}`,
      {
        details: { probe: verdict, cached: outcome.cached, cacheFile: outcome.cacheFile },
      },
    );
  }

  private entry(moduleId: string): string | undefined {
    try {
      return createRequire(import.meta.url).resolve(moduleId);
    } catch {
      return undefined;
    }
  }

  private bindingDir(): string | undefined {
    const entry = this.entry(this.options.moduleId ?? 'onnxruntime-node');
    return entry === undefined ? undefined : bindingDirOf(entry);
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
