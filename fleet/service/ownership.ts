import { createHash, randomBytes } from 'node:crypto';
import type { MqttClient } from 'mqtt';
import { messageOf } from '../../runtime/errors.js';
import { logger } from '../../runtime/log.js';
import type { FleetStore } from '../store/index.js';

const log = logger('fleet.workers');

/**
 * Which worker answers which device. With MQTT 5 shared subscriptions the broker decides: each request reaches one
 * worker of the group [MQTT 5.0 §4.8.2]. A broker may accept a shared subscription and still not deliver `$aws/…`
 * topics through it (Mosquitto 2.0.11 does exactly that: `$share/g/$aws/#` never receives), so `fleet serve` probes
 * first; where sharing does not deliver, every worker subscribes to every request and the workers split the things
 * among themselves by rendezvous hashing over the live workers in the database (heartbeat rows, a lease of a few
 * seconds). A worker that dies stops renewing its row and its things move to the others within the lease; while two
 * workers briefly both answer a thing, conditional updates keep either from applying a change twice.
 */
export interface OwnershipOptions {
  readonly heartbeatMs: number; // milliseconds between heartbeats
  readonly leaseMs: number; // milliseconds after its last heartbeat that a worker counts as gone
}

export const DEFAULT_OWNERSHIP: OwnershipOptions = Object.freeze({ heartbeatMs: 1_000, leaseMs: 4_000 });
export const SHARE_PROBE_MS = 1_500; // milliseconds to wait for the probe through the shared subscription

export type OwnershipMode = 'shared' | 'partitioned';

/** Whether the broker delivers a `$aws/…` topic through a shared subscription of `group`. */
export async function sharedSubscriptionsDeliver(client: MqttClient, group: string): Promise<boolean> {
  const topic = `$aws/outpost-fleet-probe/${randomBytes(6).toString('hex')}`;
  const filter = `$share/${group}/${topic}`;
  const seen = { delivered: false };
  const listener = (received: string): void => {
    if (received === topic) seen.delivered = true;
  };
  client.on('message', listener);
  try {
    await client.subscribeAsync(filter, { qos: 1 });
    await client.publishAsync(topic, 'probe', { qos: 1 });
    const deadline = Date.now() + SHARE_PROBE_MS;
    while (!seen.delivered && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    return seen.delivered;
  } catch (error) {
    log.warn({ error: messageOf(error) }, 'shared subscription probe failed');
    return false;
  } finally {
    client.removeListener('message', listener);
    await client.unsubscribeAsync(filter).catch(() => undefined);
  }
}

export function rendezvousOwner(thing: string, workers: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestScore = -1n;
  for (const worker of workers) {
    const score = createHash('sha1').update(`${worker}\n${thing}`).digest().readBigUInt64BE(0);
    if (score > bestScore) {
      best = worker;
      bestScore = score;
    }
  }
  return best;
}

export class Ownership {
  private live: readonly string[];
  private timer: NodeJS.Timeout | undefined;

  constructor(
    readonly mode: OwnershipMode,
    private readonly store: FleetStore,
    readonly workerId: string,
    private readonly now: () => number,
    private readonly options: OwnershipOptions = DEFAULT_OWNERSHIP,
  ) {
    this.live = [workerId];
  }

  /** Whether this worker answers `thing`'s requests. */
  owns(thing: string): boolean {
    return this.mode === 'shared' || rendezvousOwner(thing, this.live) === this.workerId;
  }

  get workers(): readonly string[] {
    return this.live;
  }

  async start(): Promise<void> {
    await this.beat();
    this.timer = setInterval(() => {
      this.beat().catch((error: unknown) => log.warn({ error: messageOf(error) }, 'heartbeat failed'));
    }, this.options.heartbeatMs);
    this.timer.unref();
  }

  /** A clean stop hands this worker's things over at once (the others drop it on their next heartbeat). */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.store.removeWorker(this.workerId).catch(() => undefined);
  }

  private async beat(): Promise<void> {
    const now = this.now();
    await this.store.heartbeat(this.workerId, now, { mode: this.mode, pid: process.pid });
    const live = await this.store.liveWorkers(now - this.options.leaseMs);
    const next = live.includes(this.workerId) ? live : [...live, this.workerId];
    if (next.join(',') !== this.live.join(',')) log.info({ worker: this.workerId, workers: next }, 'workers changed');
    this.live = next;
  }
}
