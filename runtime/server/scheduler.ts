import { OutpostError } from '../errors.js';
import type { Feeds, Model, Outputs } from '../model/model.js';

/**
 * How requests reach one loaded model (one version). The default runs each request as it comes, at most
 * `concurrency` at once, with a bounded queue behind; the batching scheduler (batcher.ts) merges queued requests
 * into one batch. When the queue is full the request is refused at once (503 with Retry-After) instead of growing
 * memory without bound.
 */
export interface Scheduler {
  run(feeds: Feeds): Promise<Outputs>;
  /** Requests waiting (not yet running). */
  readonly queued: number;
  /** Requests running now. */
  readonly running: number;
  close(): Promise<void>;
}

export interface SchedulerLimits {
  /** Requests run at once on this model. */
  readonly concurrency: number;
  /** Requests allowed to wait; one more is OVERLOADED. */
  readonly maxQueue: number;
}

export const DEFAULT_LIMITS: SchedulerLimits = Object.freeze({ concurrency: 4, maxQueue: 256 });

/** Seconds a client should wait before retrying after a 503, for the Retry-After header. */
export const RETRY_AFTER_SECONDS = 1;

export function overloaded(model: Model, queued: number): OutpostError {
  return new OutpostError(
    'OVERLOADED',
    `model ${model.name}@${model.version} is at capacity (${queued} requests queued); retry after ${RETRY_AFTER_SECONDS} s`,
    {
      retryable: true,
      details: { model: model.name, version: model.version, queued, retryAfterSeconds: RETRY_AFTER_SECONDS },
    },
  );
}

/** Concurrency limit and a bounded FIFO: the default scheduler, and the shape batching builds on. */
export class DirectScheduler implements Scheduler {
  private active = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(
    private readonly model: Model,
    private readonly limits: SchedulerLimits = DEFAULT_LIMITS,
  ) {}

  get queued(): number {
    return this.waiting.length;
  }

  get running(): number {
    return this.active;
  }

  async run(feeds: Feeds): Promise<Outputs> {
    if (this.active < this.limits.concurrency) this.active++;
    else if (this.waiting.length >= this.limits.maxQueue) throw overloaded(this.model, this.waiting.length);
    else await new Promise<void>((resolve) => this.waiting.push(resolve)); // the finishing request hands over its slot
    try {
      return await this.model.infer(feeds);
    } finally {
      const next = this.waiting.shift();
      if (next === undefined) this.active--;
      else next();
    }
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

export type SchedulerFactory = (model: Model) => Scheduler;

export const directScheduler =
  (limits: SchedulerLimits = DEFAULT_LIMITS): SchedulerFactory =>
  (model) =>
    new DirectScheduler(model, limits);
