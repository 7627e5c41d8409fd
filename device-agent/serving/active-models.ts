import { logger } from '../../runtime/log.js';
import type { Model } from '../../runtime/model/index.js';
import {
  type PipelineServiceOptions,
  type ServiceRepository,
  ModelService,
  type ServiceOptions,
} from '../../runtime/server/index.js';
import { ActivePipelines } from './active-pipelines.js';

const log = logger('agent.repository');

/**
 * The agent's served models: one ModelService per name, whose production versions (with traffic weights) and shadow
 * follow the model's serving plan. Changes happen in one step, so a request sees the old set or the new one, never
 * none; models no longer named are released after their in-flight calls finish.
 */
export class ActiveModels implements ServiceRepository {
  private readonly byName = new Map<string, ModelService>();
  private readonly listeners: ((name: string, loaded: readonly Model[]) => void)[] = [];
  /** The pipelines served beside the models (their own plans: canary, shadow), closed with them. */
  readonly pipelines: ActivePipelines;

  /** `pipelines`: the options of every pipeline's service (its observers: capture, status). */
  constructor(
    private readonly options: ServiceOptions = {},
    pipelines: PipelineServiceOptions = {},
  ) {
    this.pipelines = new ActivePipelines(pipelines);
  }

  /** Told the models loaded under a name (production and shadow) after every change to it; none after removal. */
  onChange(listener: (name: string, loaded: readonly Model[]) => void): void {
    this.listeners.push(listener);
  }

  private changed(name: string, loaded: readonly (Model | undefined)[]): void {
    const models = loaded.filter((m): m is Model => m !== undefined);
    for (const listener of this.listeners) {
      try {
        listener(name, models);
      } catch (error) {
        log.warn({ model: name, error }, 'serving change listener failed');
      }
    }
  }

  service(name: string): ModelService | undefined {
    return this.byName.get(name);
  }

  services(): readonly ModelService[] {
    return [...this.byName.values()];
  }

  /** The first production model of `name` (the only one unless a canary is running). */
  get(name: string, version?: string): Model | undefined {
    const model = this.byName.get(name)?.versions()[0];
    return model !== undefined && (version === undefined || model.version === version) ? model : undefined;
  }

  /** The loaded model of `name` at `version`, production or shadow. */
  loaded(name: string, version: string): Model | undefined {
    const service = this.byName.get(name);
    return [...(service?.versions() ?? []), service?.shadowModel()].find((m) => m?.version === version);
  }

  list(): readonly Model[] {
    return this.services().flatMap((s) => s.versions());
  }

  /** Serves `model` as the only version of its name from now on. */
  async swap(model: Model): Promise<void> {
    await this.serve(model.name, [{ model, weight: 1 }]);
  }

  /** Production versions with traffic weights and an optional shadow for `name`, in one step. */
  async serve(
    name: string,
    production: readonly { model: Model; weight: number }[],
    shadow?: { model: Model; percent: number },
  ): Promise<void> {
    let service = this.byName.get(name);
    if (service === undefined) {
      service = new ModelService(name, this.options);
      this.byName.set(name, service);
    }
    const before = [...service.versions(), service.shadowModel()];
    await service.setVersions(production);
    await service.setShadow(shadow?.model, shadow?.percent ?? 0);
    const kept = new Set<Model | undefined>([...production.map((p) => p.model), shadow?.model]);
    log.info(
      {
        model: name,
        production: production.map((p) => `${p.model.version}×${p.weight}`),
        ...(shadow === undefined ? {} : { shadow: `${shadow.model.version}@${shadow.percent}%` }),
      },
      'serving',
    );
    this.changed(name, [...kept]);
    for (const old of before) if (old !== undefined && !kept.has(old)) await old.release();
  }

  async remove(name: string): Promise<void> {
    const service = this.byName.get(name);
    this.byName.delete(name);
    const models = [...(service?.versions() ?? []), service?.shadowModel()];
    await service?.close();
    this.changed(name, []);
    for (const m of models) await m?.release();
  }

  async close(): Promise<void> {
    for (const name of [...this.byName.keys()]) await this.remove(name);
    await this.pipelines.close();
  }
}
