import { logger } from '../runtime/log.js';
import type { Model } from '../runtime/model/model.js';
import type { ServiceRepository } from '../runtime/server/repository.js';
import { ModelService, type ServiceOptions } from '../runtime/server/service.js';

const log = logger('agent.repository');

/**
 * The agent's served models: one ModelService per name whose production version is the active one. `swap()`
 * replaces it in one step, so a request sees the old model or the new one, never none; the old one is released
 * after its in-flight calls finish.
 */
export class ActiveModels implements ServiceRepository {
  private readonly byName = new Map<string, ModelService>();

  constructor(private readonly options: ServiceOptions = {}) {}

  service(name: string): ModelService | undefined {
    return this.byName.get(name);
  }

  services(): readonly ModelService[] {
    return [...this.byName.values()];
  }

  /** The active model of `name`, or of `name` at `version`. */
  get(name: string, version?: string): Model | undefined {
    const model = this.byName.get(name)?.versions()[0];
    return model !== undefined && (version === undefined || model.version === version) ? model : undefined;
  }

  list(): readonly Model[] {
    return this.services().flatMap((s) => s.versions());
  }

  /** Serves `model` under its name from now on; releases what it replaces. */
  async swap(model: Model): Promise<void> {
    let service = this.byName.get(model.name);
    if (service === undefined) {
      service = new ModelService(model.name, this.options);
      this.byName.set(model.name, service);
    }
    const previous = service.versions();
    await service.setVersions([{ model }]);
    log.info(
      {
        model: model.name,
        version: model.version,
        variant: model.variant.id,
        backend: model.backend,
        replaced: previous.map((m) => m.version),
      },
      'serving',
    );
    for (const old of previous) if (old !== model) await old.release();
  }

  async remove(name: string): Promise<void> {
    const service = this.byName.get(name);
    this.byName.delete(name);
    const models = service?.versions() ?? [];
    await service?.close();
    for (const m of models) await m.release();
  }

  async close(): Promise<void> {
    for (const name of [...this.byName.keys()]) await this.remove(name);
  }
}
