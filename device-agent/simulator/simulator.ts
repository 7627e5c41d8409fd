import { statfsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { freemem, totalmem } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { messageOf } from '../../runtime/errors.js';
import { logger } from '../../runtime/log.js';
import type { AgentStatus } from '../storage/status.js';
import { readPem } from '../transport/tls.js';
import { SimulatedDevice, type SharedDeviceSettings } from './device.js';
import type { SeenJob } from './job.js';
import { summarize, type SimulationSummary } from './summary.js';
import {
  planDevices,
  planOutcomes,
  type PlannedDevice,
  type PlannedOutcome,
  type SimulationPlanOptions,
} from './plan.js';

const log = logger('simulator');

export interface SimulatorOptions extends SimulationPlanOptions {
  readonly url: string;
  /** PEM text or paths; a path holding `{thing}` is read per device (one client certificate per thing, for ACLs). */
  readonly tls?: { readonly ca?: string; readonly cert?: string; readonly key?: string };
  readonly dir: string;
  readonly trustedKeys?: readonly string[];
  /** Accept unsigned artifacts when no trusted keys are given (the agent's `allowUnsigned`). */
  readonly allowUnsigned?: boolean;
  /** Install + self-test time of the stand-in; ms. */
  readonly latencyMs?: number;
  /** The bake when a job names none; seconds. */
  readonly bakeSeconds?: number;
  /** When the offline devices come online; ms after start. Absent: never. */
  readonly onlineAfterMs?: number;
  /** Devices connecting at once (a broker takes a burst of CONNECTs, not 500 TLS handshakes in one tick). */
  readonly connectConcurrency?: number;
  readonly maxInFlightBlocks?: number;
  readonly encoding?: 'json' | 'cbor';
  readonly statusIntervalSeconds?: number; // seconds
  /** Send the agent's deployment.step events (default true, as real devices do). */
  readonly events?: boolean;
  /** Progress: devices online, jobs ended. */
  readonly onProgress?: (progress: SimulatorProgress) => void;
}

export interface SimulatorProgress {
  readonly online: number;
  readonly offline: number;
  readonly devices: number;
  readonly jobsEnded: number;
  /** The job that just ended, when one did. */
  readonly job?: SeenJob & { readonly thing: string };
}

export const SIMULATOR_DEFAULTS = Object.freeze({
  latencyMs: 0, // ms
  bakeSeconds: 0, // seconds
  connectConcurrency: 25,
  /** Fewer than the agent's 32: 500 devices × 32 blocks of 64 KiB in flight would be 1 GiB in one process. */
  maxInFlightBlocks: 4,
  encoding: 'cbor' as const,
  statusIntervalSeconds: 60, // seconds, the agent's default
});

/** Refreshed at most this often for the status messages' disk and memory figures. */
const MACHINE_FIGURES_MS = 1_000; // ms

/**
 * N simulated devices in one process (device.ts each), from a seeded plan (plan.ts). One MQTT connection per device,
 * as real devices have; what can be shared is: settings, TLS material read once, the per-job outcome table (one
 * array per job id, not N), the machine figures of the status message.
 */
export class Simulator {
  readonly plan: readonly PlannedDevice[];
  private readonly devices = new Map<string, SimulatedDevice>();
  private readonly outcomes = new Map<string, PlannedOutcome[]>();
  private readonly jobs: (SeenJob & { thing: string })[] = [];
  private readonly failures: { thing: string; error: string }[] = [];
  private late: Promise<void> | undefined;
  private readonly stopping = new AbortController();
  private shared: SharedDeviceSettings | undefined;
  private stopped: Promise<void> | undefined;
  /** Devices connected when stop() was called: what "online at exit" means in a summary taken after it. */
  private onlineAtStop: number | undefined;

  constructor(private readonly options: SimulatorOptions) {
    this.plan = planDevices(options);
  }

  /** The outcome the stand-in gives `jobId` on device `index`: the seeded table, computed once per job. */
  outcomeOf(jobId: string, index: number): PlannedOutcome {
    let table = this.outcomes.get(jobId);
    if (table === undefined) {
      table = planOutcomes(this.options, jobId);
      this.outcomes.set(jobId, table);
    }
    return table[index] ?? 'succeed';
  }

  /** Starts every online device (at most `connectConcurrency` connecting at once) and announces the offline ones. */
  async start(): Promise<void> {
    const o = this.options;
    await mkdir(o.dir, { recursive: true });
    this.shared = {
      url: o.url,
      dir: o.dir,
      trustedKeys: o.trustedKeys ?? [],
      requireSignature: (o.trustedKeys ?? []).length > 0 || o.allowUnsigned !== true,
      latencyMs: o.latencyMs ?? SIMULATOR_DEFAULTS.latencyMs,
      bakeSeconds: o.bakeSeconds ?? SIMULATOR_DEFAULTS.bakeSeconds,
      download: {
        encoding: o.encoding ?? SIMULATOR_DEFAULTS.encoding,
        maxInFlightBlocks: o.maxInFlightBlocks ?? SIMULATOR_DEFAULTS.maxInFlightBlocks,
      },
      statusIntervalSeconds: o.statusIntervalSeconds ?? SIMULATOR_DEFAULTS.statusIntervalSeconds,
      machine: machineFigures(o.dir),
      events: o.events ?? true,
    };
    const online = this.plan.filter((d) => !d.offline);
    const offline = this.plan.filter((d) => d.offline);
    await this.each(offline, (d) => SimulatedDevice.announceOffline(this.deviceOptions(d)));
    await this.each(online, async (d) => {
      this.devices.set(d.thing, await SimulatedDevice.start(this.deviceOptions(d)));
      this.progress();
    });
    if (o.onlineAfterMs !== undefined && offline.length > 0) this.late = this.comeOnline(offline, o.onlineAfterMs);
  }

  /** Every job every device has ended, in the order they ended. */
  get seen(): readonly (SeenJob & { readonly thing: string })[] {
    return this.jobs;
  }

  device(thing: string): SimulatedDevice | undefined {
    return this.devices.get(thing);
  }

  get online(): number {
    return [...this.devices.values()].filter((d) => d.transport.connected).length;
  }

  /** Devices that could not connect or whose job loop failed, with the reason. */
  get errors(): readonly { thing: string; error: string }[] {
    return [
      ...this.failures,
      ...[...this.devices.values()].flatMap((d) => d.errors.map((error) => ({ thing: d.thing, error }))),
    ];
  }

  /** What the devices saw so far (the command prints it at exit). */
  summary(): SimulationSummary {
    return summarize({
      plan: this.plan,
      seen: this.jobs,
      online: this.onlineAtStop ?? this.online,
      started: new Set(this.devices.keys()),
      errors: this.errors,
    });
  }

  /** Stops every device (each lets a final update in flight finish); a second call waits for the first. */
  stop(): Promise<void> {
    this.stopped ??= (async () => {
      this.onlineAtStop = this.online;
      this.stopping.abort();
      await this.late?.catch(() => undefined);
      await Promise.all([...this.devices.values()].map((d) => d.close().catch(() => undefined)));
    })();
    return this.stopped;
  }

  private deviceOptions(d: PlannedDevice) {
    const shared = this.shared;
    if (shared === undefined) throw new Error('simulator used before start()');
    const tls = this.options.tls;
    return {
      thing: d.thing,
      target: d.target,
      shared: tls === undefined ? shared : { ...shared, tls: perThing(tls, d.thing) },
      outcome: (jobId: string) => this.outcomeOf(jobId, d.index),
      onJob: (job: SeenJob) => {
        this.jobs.push({ ...job, thing: d.thing });
        this.progress({ ...job, thing: d.thing });
      },
    };
  }

  private async comeOnline(offline: readonly PlannedDevice[], afterMs: number): Promise<void> {
    await sleep(afterMs, undefined, { signal: this.stopping.signal });
    await this.each(offline, async (d) => {
      this.devices.set(d.thing, await SimulatedDevice.start(this.deviceOptions(d)));
      this.progress();
    });
  }

  /** Runs `fn` over the devices, `connectConcurrency` at a time; a device that fails is recorded, not fatal. */
  private async each(devices: readonly PlannedDevice[], fn: (d: PlannedDevice) => Promise<void>): Promise<void> {
    const queue = [...devices];
    const workers = this.options.connectConcurrency ?? SIMULATOR_DEFAULTS.connectConcurrency;
    await Promise.all(
      Array.from({ length: Math.min(workers, queue.length) }, async () => {
        for (let d = queue.shift(); d !== undefined && !this.stopping.signal.aborted; d = queue.shift()) {
          try {
            await fn(d);
          } catch (error) {
            log.warn({ thing: d.thing, error: messageOf(error) }, 'simulated device did not start');
            this.failures.push({ thing: d.thing, error: messageOf(error) });
          }
        }
      }),
    );
  }

  private progress(job?: SeenJob & { thing: string }): void {
    const online = this.devices.size;
    this.options.onProgress?.({
      online,
      offline: this.plan.length - online,
      devices: this.plan.length,
      jobsEnded: this.jobs.length,
      ...(job === undefined ? {} : { job }),
    });
  }
}

type Tls = NonNullable<SimulatorOptions['tls']>;

/** Only the fields that are set (the transport reads a present key as "use this"). */
function tlsOf(ca: string | undefined, cert: string | undefined, key: string | undefined): Tls {
  return {
    ...(ca === undefined ? {} : { ca }),
    ...(cert === undefined ? {} : { cert }),
    ...(key === undefined ? {} : { key }),
  };
}

/** `{thing}` in a TLS path names each device's own file; PEM text and plain paths are shared. */
function perThing(tls: Tls, thing: string): Tls {
  const sub = (value: string | undefined) => value?.replaceAll('{thing}', thing);
  return tlsOf(sub(tls.ca), sub(tls.cert), sub(tls.key));
}

/** Reads shared TLS material once (paths without `{thing}` become PEM text), so N devices do not read N times. */
export async function readSharedTls(tls: SimulatorOptions['tls']): Promise<SimulatorOptions['tls']> {
  if (tls === undefined) return undefined;
  const read = async (value: string | undefined) =>
    value === undefined || value.includes('{thing}') ? value : readPem(value);
  const [ca, cert, key] = await Promise.all([read(tls.ca), read(tls.cert), read(tls.key)]);
  return tlsOf(ca, cert, key);
}

/** The status message's disk and memory, measured at most once a second for the whole process. */
function machineFigures(dir: string): () => Pick<AgentStatus, 'disk' | 'memory'> {
  let at = -Infinity;
  let figures: Pick<AgentStatus, 'disk' | 'memory'> | undefined;
  return () => {
    const now = Date.now();
    if (figures === undefined || now - at > MACHINE_FIGURES_MS) {
      const s = statfsSync(dir);
      figures = {
        disk: { path: dir, freeBytes: s.bavail * s.bsize, totalBytes: s.blocks * s.bsize },
        memory: { rssBytes: process.memoryUsage.rss(), systemFreeBytes: freemem(), systemTotalBytes: totalmem() },
      };
      at = now;
    }
    return figures;
  };
}
