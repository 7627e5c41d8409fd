import { messageOf } from '../../runtime/errors.js';
import { logger } from '../../runtime/log.js';
import type { FleetStore } from '../store/index.js';
import type { StoreExecutions } from './jobs-store.js';

const log = logger('fleet.sweeper');

/**
 * What happens with time rather than with a message, run by every worker against the database (conditional updates
 * make two workers sweeping at once harmless): IN_PROGRESS executions past their deadline become TIMED_OUT; a
 * connected thing whose QUEUED execution has not moved for `nudgeAfterMs` is told again (notify-next), because the
 * start-next it sent may have gone to a worker that died before answering.
 */
export interface SweeperOptions {
  readonly intervalMs: number; // milliseconds between sweeps
  readonly nudgeAfterMs: number; // milliseconds a QUEUED execution waits before its thing is notified again
}

export const DEFAULT_SWEEPER: SweeperOptions = Object.freeze({ intervalMs: 1_000, nudgeAfterMs: 15_000 });
const BATCH = 200; // executions per sweep and kind

export class Sweeper {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private readonly nudged = new Map<string, number>();

  constructor(
    private readonly store: FleetStore,
    private readonly executions: StoreExecutions,
    private readonly notify: (thing: string) => Promise<void>,
    private readonly now: () => number,
    private readonly options: SweeperOptions = DEFAULT_SWEEPER,
  ) {}

  start(): void {
    this.timer = setInterval(() => {
      this.running ??= this.sweep()
        .catch((error: unknown) => log.warn({ error: messageOf(error) }, 'sweep failed; next one retries'))
        .finally(() => (this.running = undefined));
    }, this.options.intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.running;
  }

  async sweep(): Promise<void> {
    const now = this.now();
    for (const execution of await this.store.dueExecutions(now, BATCH)) {
      const step = execution.stepDeadlineMs !== undefined && execution.stepDeadlineMs <= now;
      const moved = await this.executions.end(execution, 'TIMED_OUT', {
        reason: step ? 'the step timeout passed' : 'the in-progress timeout passed',
      });
      if (moved.ok) await this.notify(execution.thing);
    }
    const stale = await this.store.stalePending(now - this.options.nudgeAfterMs, BATCH);
    for (const thing of new Set(stale.map((e) => e.thing))) {
      if ((this.nudged.get(thing) ?? 0) > now - this.options.nudgeAfterMs) continue;
      const record = await this.store.getThing(thing);
      if (record?.connected !== true) continue;
      this.nudged.set(thing, now);
      await this.notify(thing);
    }
    if (this.nudged.size > 10_000) this.nudged.clear();
  }
}
