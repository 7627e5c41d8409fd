import { isOutpostError, messageOf } from '../runtime/errors.js';
import { logger } from '../runtime/log.js';
import type { ServiceObserver } from '../runtime/server/index.js';
import { outpostTopics } from './protocol/index.js';
import { writeStatus, type AgentStatus } from './storage/status.js';
import type { Transport } from './transport/types.js';

const log = logger('agent.status');

/** status.json is rewritten at most this often while calls change what it shows (shadow and guardrail figures). */
export const STATUS_REFRESH_MS = 1000; // ms

export interface StatusReporterOptions {
  readonly thing: string;
  readonly dataDir: string;
  /** How often the retained status message is published; seconds. */
  readonly intervalSeconds: number;
  readonly transport: Transport | undefined;
  /** The status as of now (the agent builds it). */
  readonly build: () => Promise<AgentStatus>;
}

/**
 * Where the agent's status goes: `<dataDir>/status.json` for `outpost agent status` (rewritten on every change, one
 * write at a time, and at most every STATUS_REFRESH_MS while served calls change its figures) and the retained
 * status message (latest only, never spooled: an old status is worth nothing).
 */
export class StatusReporter {
  /** Marks the status stale on every served call: an alarm or a shadow figure happens in a call, status follows. */
  readonly observer: ServiceObserver = { onInference: () => (this.stale = true) };
  private stale = false;
  private write: Promise<void> = Promise.resolve();
  private statusTimer: NodeJS.Timeout | undefined;
  private refreshTimer: NodeJS.Timeout | undefined;

  constructor(private readonly options: StatusReporterOptions) {}

  /** Starts the periodic publication and the stale-status refresh. */
  start(): void {
    this.statusTimer = setInterval(() => void this.publish(), this.options.intervalSeconds * 1000);
    this.statusTimer.unref();
    this.refreshTimer = setInterval(() => {
      if (!this.stale) return;
      this.stale = false;
      void this.refresh();
    }, STATUS_REFRESH_MS);
    this.refreshTimer.unref();
  }

  /** status.json rewritten from the status as of now, after any write under way. */
  refresh(): Promise<void> {
    this.write = this.write
      .then(async () => writeStatus(this.options.dataDir, await this.options.build()))
      .catch((error: unknown) => log.warn({ error: messageOf(error) }, 'status not written'));
    return this.write;
  }

  /** status.json, and the retained status message while connected. */
  async publish(): Promise<void> {
    await this.refresh();
    const transport = this.options.transport;
    if (transport?.connected !== true) return;
    try {
      await transport.publish(outpostTopics.status(this.options.thing), JSON.stringify(await this.options.build()), {
        qos: 1,
        retain: true,
      });
    } catch (error) {
      if (!isOutpostError(error)) log.debug({ error: messageOf(error) }, 'status not published');
    }
  }

  /** No more periodic publication or refresh (a change may still refresh: see idle). */
  stop(): void {
    if (this.statusTimer !== undefined) clearInterval(this.statusTimer);
    if (this.refreshTimer !== undefined) clearInterval(this.refreshTimer);
  }

  /** Resolves once the last write asked for has finished. */
  idle(): Promise<void> {
    return this.write;
  }
}
