import { OutpostError, messageOf } from '../errors.js';
import type { Backend, BackendName } from './types.js';

interface Entry {
  readonly backend: Backend;
  readonly priority: number;
  /** Settles once: the lazily started init(), shared by every caller. */
  init?: Promise<void>;
  failure?: string;
}

export interface ResolvedBackend {
  readonly backend: Backend;
  /** Why higher-priority backends were passed over, in order. Empty when the first choice served. */
  readonly skipped: readonly { name: BackendName; reason: string }[];
}

/**
 * Backends by name and priority (higher first), initialised lazily and at most once, as ONNX Runtime JS's
 * `backend-impl.ts` does. A backend whose init failed stays registered and keeps its reason for reports.
 */
export class BackendRegistry {
  private readonly entries = new Map<BackendName, Entry>();

  register(backend: Backend, priority: number): this {
    this.entries.set(backend.name, { backend, priority });
    return this;
  }

  names(): BackendName[] {
    return [...this.entries.values()].sort((a, b) => b.priority - a.priority).map((e) => e.backend.name);
  }

  has(name: BackendName): boolean {
    return this.entries.has(name);
  }

  /** Initialises one backend; throws BACKEND_UNAVAILABLE with the reason if it cannot serve. */
  async get(name: BackendName): Promise<Backend> {
    const entry = this.entries.get(name);
    if (entry === undefined) {
      throw new OutpostError(
        'BACKEND_UNAVAILABLE',
        `no backend named "${name}"; registered: ${this.names().join(', ')}`,
        {
          details: { name, registered: this.names() },
        },
      );
    }
    entry.init ??= entry.backend.init().catch((error: unknown) => {
      entry.failure = messageOf(error);
      throw error;
    });
    try {
      await entry.init;
    } catch (error) {
      throw new OutpostError('BACKEND_UNAVAILABLE', entry.failure ?? messageOf(error), { cause: error });
    }
    return entry.backend;
  }

  /**
   * The first backend of `candidates` (default: all, by priority) that initialises. Reports every failure in one
   * error when none does.
   */
  async resolve(candidates: readonly BackendName[] = this.names()): Promise<ResolvedBackend> {
    const skipped: { name: BackendName; reason: string }[] = [];
    for (const name of candidates) {
      try {
        return { backend: await this.get(name), skipped };
      } catch (error) {
        skipped.push({ name, reason: messageOf(error) });
      }
    }
    const reasons = skipped.map((s) => `${s.name}: ${s.reason}`).join('; ');
    throw new OutpostError('BACKEND_UNAVAILABLE', `no backend could start (${reasons || 'none registered'})`, {
      details: { skipped },
    });
  }
}
