import { batchingScheduler, type BatchObserver } from './batching.js';
import { directScheduler, type SchedulerFactory, type SchedulerLimits } from './direct.js';

/** Dynamic batching settings, as flags, the agent's config and `outpost tune` state them. */
export interface BatchSettings {
  readonly maxBatchSize: number; // rows
  readonly maxQueueDelayMs: number; // ms
}

export interface SchedulingPlan {
  /** Every version's concurrency and queue bound when it runs calls one by one. */
  readonly direct: SchedulerLimits;
  /** Batches run at once on a batching version. */
  readonly batchConcurrency: number;
  /** Batching for every batchable model; absent: direct scheduling. */
  readonly batching?: BatchSettings;
  /** By model name, what `outpost tune` chose, over `batching` (null: no batching for that model). */
  readonly perModel?: ReadonlyMap<string, BatchSettings | null>;
  readonly observer?: BatchObserver;
}

/**
 * One scheduler factory for a whole repository that decides per model: a tuned model batches as its tuning says,
 * the others as `batching` says, and batching falls back to direct scheduling for models without a batch axis.
 * Shared by `outpost serve` and the agent.
 */
export function plannedScheduler(plan: SchedulingPlan): SchedulerFactory {
  const direct = directScheduler(plan.direct);
  const batcher = (b: BatchSettings): SchedulerFactory =>
    batchingScheduler({
      ...b,
      concurrency: plan.batchConcurrency,
      maxQueue: plan.direct.maxQueue,
      ...(plan.observer === undefined ? {} : { observer: plan.observer }),
    });
  const fallback = plan.batching === undefined ? direct : batcher(plan.batching);
  const tuned = new Map<string, SchedulerFactory>();
  for (const [name, batch] of plan.perModel ?? []) tuned.set(name, batch === null ? direct : batcher(batch));
  return (model) => (tuned.get(model.name) ?? fallback)(model);
}
