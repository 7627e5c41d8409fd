import { setTimeout as sleep } from 'node:timers/promises';
import { OutpostError, messageOf } from '../../runtime/errors.js';
import { logger } from '../../runtime/log.js';
import { retry } from '../../runtime/retry.js';
import { OUTPOST_VERSION } from '../../runtime/version.js';
import { RETRY_DEFAULTS } from '../config.js';
import { JobsClient } from '../jobs-client.js';
import { NextJobs } from '../next-jobs.js';
import { offlineStatusPayload, outpostTopics, type JobExecution } from '../protocol/index.js';
import type { DeploymentStep } from '../storage/deployment-records.js';
import type { AgentStatus } from '../storage/status.js';
import { MqttJsTransport } from '../transport/index.js';
import type { Transport } from '../transport/types.js';
import { runSimulatedJob, type SeenJob } from './job.js';
import type { PlannedOutcome, SimulatedTarget } from './plan.js';

const log = logger('simulator.device');

/** How long close() lets a final update in flight finish; ms. */
const CLOSE_GRACE_MS = 5_000;

/** What every device of one simulation shares (one object, not N copies). */
export interface SharedDeviceSettings {
  readonly url: string;
  readonly tls?: { readonly ca?: string; readonly cert?: string; readonly key?: string };
  /** Scratch root: each device works in `<dir>/<thing>/`. */
  readonly dir: string;
  readonly trustedKeys: readonly string[];
  readonly requireSignature: boolean;
  readonly latencyMs: number; // ms
  readonly bakeSeconds: number; // seconds
  readonly download: { readonly encoding: 'json' | 'cbor'; readonly maxInFlightBlocks: number };
  readonly statusIntervalSeconds: number; // seconds, as the agent's config
  /** Process-wide figures for the status message's disk and memory fields (shared by every device). */
  readonly machine: () => Pick<AgentStatus, 'disk' | 'memory'>;
  /** Emit the agent's deployment.step events (what real devices send; off saves broker traffic). */
  readonly events: boolean;
}

export interface SimulatedDeviceOptions {
  readonly thing: string;
  readonly target: SimulatedTarget;
  readonly shared: SharedDeviceSettings;
  /** What the stand-in install does for a job (plan.ts planOutcomes). */
  readonly outcome: (jobId: string) => PlannedOutcome;
  /** Active model versions at start (what a rollback returns to). */
  readonly active?: readonly { readonly model: string; readonly version: string }[];
  /** Called after each job ends on this device. */
  readonly onJob?: (job: SeenJob) => void;
}

/**
 * One simulated device: the agent's own MQTT.js transport with its last will, its status message, its Jobs client
 * and start-next loop (NextJobs), and its verified block download, all real; install, self-test and bake are the
 * stand-in in install.ts. To the registry and the Jobs service it is an agent: same topics, same messages.
 */
export class SimulatedDevice {
  readonly seen: SeenJob[] = [];
  /** Rounds that ended in an error (a request unanswered, a download given up), for failure messages. */
  readonly errors: string[] = [];
  private readonly active = new Map<string, string>();
  private readonly abort = new AbortController();
  private readonly nextJobs: NextJobs;
  private readonly startedAt = new Date();
  private working: Promise<void> | undefined;
  private again = false;
  private statusTimer: NodeJS.Timeout | undefined;
  /** close() was called: no new job starts. */
  private closing = false;
  /** A final update is on its way: close() waits for it (up to CLOSE_GRACE_MS), so the summary has its outcome. */
  private reportingNow = false;

  private constructor(
    private readonly options: SimulatedDeviceOptions,
    readonly transport: Transport,
    private readonly jobs: JobsClient,
  ) {
    for (const m of options.active ?? []) this.active.set(m.model, m.version);
    this.nextJobs = new NextJobs(jobs, RETRY_DEFAULTS.startNext, this.abort.signal);
  }

  get thing(): string {
    return this.options.thing;
  }

  get target(): SimulatedTarget {
    return this.options.target;
  }

  /** Connects (waiting for the first connection), subscribes, publishes its status and asks for a job. */
  static async start(options: SimulatedDeviceOptions): Promise<SimulatedDevice> {
    const transport = deviceTransport(options.thing, options.shared);
    const jobs = new JobsClient({ transport, thing: options.thing });
    const device = new SimulatedDevice(options, transport, jobs);
    jobs.onNextJob(() => device.wake());
    transport.onConnectionChange((connected) => {
      if (connected) device.onConnected();
    });
    await transport.connect();
    device.statusTimer = setInterval(
      () => void device.publishStatus(),
      options.shared.statusIntervalSeconds * 1000,
    ).unref();
    return device;
  }

  /**
   * A device that was online once and is dark now: it announces its status, then its last will's message, as the
   * broker would publish it on a lost connection, and disconnects. The registry knows it; it runs no jobs.
   */
  static async announceOffline(options: SimulatedDeviceOptions): Promise<void> {
    const transport = deviceTransport(options.thing, options.shared);
    await transport.connect();
    try {
      const device = new SimulatedDevice(options, transport, new JobsClient({ transport, thing: options.thing }));
      await device.publishStatus();
      await transport.publish(outpostTopics.status(options.thing), offlineStatusPayload(options.thing), {
        qos: 1,
        retain: true,
      });
    } finally {
      await transport.close();
    }
  }

  async close(): Promise<void> {
    this.closing = true;
    if (this.reportingNow && this.working !== undefined)
      await Promise.race([this.working.catch(() => undefined), sleep(CLOSE_GRACE_MS)]);
    this.abort.abort();
    if (this.statusTimer !== undefined) clearInterval(this.statusTimer);
    this.jobs.stop();
    await this.working?.catch(() => undefined);
    await this.transport.close();
  }

  /** The agent's status message (device-agent/status.ts), typed as it, so the registry reads the same fields. */
  status(): AgentStatus {
    const now = new Date();
    const { target, shared, thing } = this.options;
    return {
      thing,
      connected: true,
      pid: process.pid,
      startedAt: this.startedAt.toISOString(),
      updatedAt: now.toISOString(),
      uptimeSeconds: (now.getTime() - this.startedAt.getTime()) / 1000,
      statusIntervalSeconds: shared.statusIntervalSeconds,
      host: {
        arch: target.arch,
        profile: target.profile,
        cpuProfile: target.cpuProfile ?? target.profile,
        agentVersion: OUTPOST_VERSION,
      },
      active: [...this.active].map(([model, version]) => ({
        model,
        version,
        variant: 'fp32',
        backend: 'native',
        role: 'production',
      })),
      shadows: [],
      guardrails: [],
      health: [],
      deployments: [],
      ...shared.machine(),
      spool: { entries: 0, dropped: 0 },
    };
  }

  private async publishStatus(): Promise<void> {
    if (!this.transport.connected) return;
    try {
      await this.transport.publish(outpostTopics.status(this.thing), JSON.stringify(this.status()), {
        qos: 1,
        retain: true,
      });
    } catch (error) {
      log.debug({ thing: this.thing, error: messageOf(error) }, 'status not published');
    }
  }

  /** As the agent's onConnected: subscribe again (a lost session), publish the status, ask for a job. */
  private onConnected(): void {
    void (async () => {
      try {
        await retry(() => this.jobs.start(), {
          policy: RETRY_DEFAULTS.startNext,
          signal: this.abort.signal,
          network: 'stop',
        });
        await this.publishStatus();
        this.wake();
      } catch (error) {
        if (!this.abort.signal.aborted) this.errors.push(`connecting: ${messageOf(error)}`);
      }
    })();
  }

  private wake(): void {
    this.nextJobs.wake();
    if (this.working !== undefined) {
      this.again = true;
      return;
    }
    this.working = this.round()
      .catch((error: unknown) => {
        if (!this.abort.signal.aborted) this.errors.push(messageOf(error));
      })
      .finally(() => {
        this.working = undefined;
        if (this.again && !this.abort.signal.aborted) {
          this.again = false;
          this.wake();
        }
      });
  }

  /** The agent's round: one job at a time while connected, until start-next says there is none. */
  private async round(): Promise<void> {
    while (this.transport.connected && !this.closing) {
      const execution = await this.nextJobs.next();
      if (execution === 'again') continue;
      if (execution === undefined) return;
      await this.run(execution);
    }
  }

  private async run(execution: JobExecution): Promise<void> {
    const { shared, thing, target } = this.options;
    const job = await runSimulatedJob(
      {
        thing,
        target,
        transport: this.transport,
        jobs: this.jobs,
        dir: `${shared.dir}/${thing}`,
        trustedKeys: shared.trustedKeys,
        requireSignature: shared.requireSignature,
        outcome: this.options.outcome,
        latencyMs: shared.latencyMs,
        bakeSeconds: shared.bakeSeconds,
        download: shared.download,
        signal: this.abort.signal,
        active: this.active,
        switched: () => this.publishStatus(),
        event: (jobId, model, version, step) => this.event(jobId, model, version, step),
        online: () => this.online(),
        reporting: (active) => (this.reportingNow = active),
      },
      execution,
    );
    this.seen.push(job);
    this.options.onJob?.(job);
  }

  private async event(jobId: string, model: string, version: string, step: DeploymentStep): Promise<void> {
    if (!this.options.shared.events || !this.transport.connected) return;
    const event = { thing: this.thing, type: 'deployment.step', timestamp: Math.floor(Date.now() / 1000) };
    const payload = JSON.stringify({ ...event, jobId, model, version, step });
    // The agent spools these; a simulated device sends them once, and one lost is only a missing progress line.
    await this.transport.publish(outpostTopics.events(this.thing), payload, { qos: 1 }).catch(() => undefined);
  }

  private online(): Promise<void> {
    if (this.transport.connected) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const off = this.transport.onConnectionChange((connected) => {
        if (!connected) return;
        off();
        resolve();
      });
      this.abort.signal.addEventListener(
        'abort',
        () => {
          off();
          reject(new OutpostError('DEPLOYMENT_INTERRUPTED', 'simulated device stopping'));
        },
        { once: true },
      );
    });
  }
}

function deviceTransport(thing: string, shared: SharedDeviceSettings): Transport {
  return new MqttJsTransport({
    url: shared.url,
    clientId: thing,
    ...(shared.tls === undefined ? {} : { tls: shared.tls }),
    will: { topic: outpostTopics.status(thing), payload: offlineStatusPayload(thing), qos: 1, retain: true },
  });
}
