import { OutpostError } from '../../errors.js';
import type { Feeds, Model, Outputs } from '../../model/model.js';

/**
 * How requests reach one loaded model (one version). The default runs each request as it comes, at most
 * `concurrency` at once, with a bounded queue behind; the batching scheduler (batching.ts) merges queued requests
 * into one batch. When the queue is full the request is refused at once (503 with Retry-After) instead of growing
 * memory without bound.
 */
export interface Scheduler {
  /**
   * Runs `feeds` when its turn comes. A request whose `signal` aborts while it waits leaves the queue and rejects
   * with REQUEST_CANCELLED, without reaching the model (its client went away: nobody would read the answer).
   */
  run(feeds: Feeds, signal?: AbortSignal): Promise<Outputs>;
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

export function cancelled(model: Model): OutpostError {
  return new OutpostError(
    'REQUEST_CANCELLED',
    `request for ${model.name}@${model.version} cancelled before it ran: the caller went away`,
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

  async run(feeds: Feeds, signal?: AbortSignal): Promise<Outputs> {
    if (signal?.aborted === true) throw cancelled(this.model);
    if (this.active < this.limits.concurrency) this.active++;
    else if (this.waiting.length >= this.limits.maxQueue) throw overloaded(this.model, this.waiting.length);
    else await this.turn(signal); // the finishing request hands over its slot
    try {
      return await this.model.infer(feeds);
    } finally {
      const next = this.waiting.shift();
      if (next === undefined) this.active--;
      else next();
    }
  }

  /** Waits in the FIFO for a slot; leaves it (and rejects) if `signal` aborts first. */
  private turn(signal: AbortSignal | undefined): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const go = (): void => {
        signal?.removeEventListener('abort', leave);
        resolve();
      };
      const leave = (): void => {
        const at = this.waiting.indexOf(go);
        if (at < 0) return; // its turn came first: it runs
        this.waiting.splice(at, 1);
        reject(cancelled(this.model));
      };
      this.waiting.push(go);
      signal?.addEventListener('abort', leave, { once: true });
    });
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
