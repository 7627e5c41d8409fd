import { OutpostError } from '../../errors.js';
import type { Model } from '../../model/model.js';
import { ModelService, type ServiceOptions } from './service.js';

/**
 * Where the server finds what it serves: one ModelService per model name. The agent's repository swaps versions as
 * deployments activate them; `outpost serve` builds a fixed one.
 */
export interface ServiceRepository {
  service(name: string): ModelService | undefined;
  services(): readonly ModelService[];
}

/** A repository over models loaded once: versions of the same name share traffic equally unless weights say otherwise. */
export class StaticRepository implements ServiceRepository {
  private readonly byName = new Map<string, ModelService>();
  /** Each model's weight as added: adding a version must not reset the others' to 1. */
  private readonly weights = new Map<Model, number>();

  constructor(private readonly options: ServiceOptions = {}) {}

  async add(model: Model, weight = 1): Promise<this> {
    let service = this.byName.get(model.name);
    if (service === undefined) {
      service = new ModelService(model.name, this.options);
      this.byName.set(model.name, service);
    }
    if (service.versions().some((m) => m.version === model.version)) {
      throw new OutpostError('INVALID_ARGUMENT', `${model.name}@${model.version} is already served`);
    }
    this.weights.set(model, weight);
    await service.setVersions(
      [...service.versions(), model].map((m) => ({ model: m, weight: this.weights.get(m) ?? 1 })),
    );
    return this;
  }

  service(name: string): ModelService | undefined {
    return this.byName.get(name);
  }

  services(): readonly ModelService[] {
    return [...this.byName.values()];
  }

  async close(): Promise<void> {
    for (const s of this.byName.values()) await s.close();
  }
}
