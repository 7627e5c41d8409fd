import type { Model } from '../model/model.js';

/**
 * Where the server finds models: by name, optionally by version. The agent's repository swaps versions atomically
 * (the old one serves until the new one passed its self-test); `outpost serve` uses a fixed one.
 */
export interface ModelRepository {
  /** The model serving `name` (its active version when `version` is undefined), or undefined. */
  get(name: string, version?: string): Model | undefined;
  /** Every loaded model (all versions), for metadata and readiness. */
  list(): readonly Model[];
}

/** A repository over a fixed set of loaded models; the first loaded version of a name is its default. */
export class StaticRepository implements ModelRepository {
  private readonly models: Model[] = [];

  add(model: Model): this {
    this.models.push(model);
    return this;
  }

  get(name: string, version?: string): Model | undefined {
    return this.models.find((m) => m.name === name && (version === undefined || m.version === version));
  }

  list(): readonly Model[] {
    return this.models;
  }
}
