import { logger } from '../runtime/log.js';
import type { Model } from '../runtime/model/model.js';
import type { ModelRepository } from '../runtime/server/repository.js';

const log = logger('agent.repository');

/**
 * The agent's served models: one active Model per name. `swap()` replaces it in one assignment, so a request sees
 * the old model or the new one, never none; the old one is released after its in-flight calls finish.
 */
export class ActiveModels implements ModelRepository {
  private readonly active = new Map<string, Model>();

  get(name: string, version?: string): Model | undefined {
    const model = this.active.get(name);
    return model !== undefined && (version === undefined || model.version === version) ? model : undefined;
  }

  list(): readonly Model[] {
    return [...this.active.values()];
  }

  /** Serves `model` under its name from now on; releases what it replaces. */
  async swap(model: Model): Promise<void> {
    const previous = this.active.get(model.name);
    this.active.set(model.name, model);
    log.info(
      {
        model: model.name,
        version: model.version,
        variant: model.variant.id,
        backend: model.backend,
        replaced: previous?.version,
      },
      'serving',
    );
    if (previous !== undefined && previous !== model) await previous.release();
  }

  async remove(name: string): Promise<void> {
    const model = this.active.get(name);
    this.active.delete(name);
    await model?.release();
  }

  async close(): Promise<void> {
    for (const model of this.active.values()) await model.release();
    this.active.clear();
  }
}
