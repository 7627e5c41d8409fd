import { statfsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { freemem, totalmem } from 'node:os';
import type { JobDocument } from '../../device-agent/protocol/index.js';
import {
  SIMULATOR_DEFAULTS,
  SimulatedDevice,
  type SharedDeviceSettings,
  type SimulatedTarget,
} from '../../device-agent/simulator/index.js';
import type { Transport } from '../../device-agent/transport/types.js';

/**
 * A light device for fleet tests and benches: one simulated device of the fleet simulator (device-agent/simulator/),
 * so tests, benches and `outpost fleet simulate` run the same code — the agent's Jobs client, verified block
 * download, artifact verification and status message, with the simulator's NAMED STAND-IN for install and self-test
 * (no ONNX Runtime). Unsigned artifacts are accepted unless trusted keys are given.
 */
export interface LightDeviceOptions {
  readonly url: string;
  readonly thing: string;
  readonly dir: string;
  readonly target: SimulatedTarget;
  readonly outcome?: 'succeed' | 'fail';
  /** Active model versions to report (what a rollback would return to). */
  readonly active?: readonly { model: string; version: string }[];
  readonly tls?: { ca?: string; cert?: string; key?: string };
  readonly maxInFlightBlocks?: number;
  readonly encoding?: 'json' | 'cbor';
  readonly trustedKeys?: readonly string[];
}

export interface Received {
  readonly jobId: string;
  readonly document: JobDocument | undefined;
  readonly status: 'SUCCEEDED' | 'FAILED' | 'REJECTED';
  readonly reasonCode: string;
}

const POLL_MS = 20; // ms between looks at what the device has seen

export class LightDevice {
  private constructor(private readonly device: SimulatedDevice) {}

  get thing(): string {
    return this.device.thing;
  }

  get transport(): Transport {
    return this.device.transport;
  }

  /** Jobs ended on this device, in order. */
  get received(): Received[] {
    return this.device.seen.map((j) => ({
      jobId: j.jobId,
      document: j.document,
      status: j.status,
      reasonCode: j.reasonCode,
    }));
  }

  /** Rounds that ended in an error (a request unanswered, a download given up), for failure messages. */
  get errors(): readonly string[] {
    return this.device.errors;
  }

  static async start(options: LightDeviceOptions): Promise<LightDevice> {
    const trustedKeys = options.trustedKeys ?? [];
    await mkdir(options.dir, { recursive: true });
    const shared: SharedDeviceSettings = {
      url: options.url,
      ...(options.tls === undefined ? {} : { tls: options.tls }),
      dir: options.dir,
      trustedKeys,
      requireSignature: trustedKeys.length > 0,
      latencyMs: 0,
      bakeSeconds: 0,
      download: {
        encoding: options.encoding ?? 'cbor', // the agent's default: blocks as raw bytes
        maxInFlightBlocks: options.maxInFlightBlocks ?? 16,
      },
      statusIntervalSeconds: SIMULATOR_DEFAULTS.statusIntervalSeconds,
      machine: () => {
        const s = statfsSync(options.dir);
        return {
          disk: { path: options.dir, freeBytes: s.bavail * s.bsize, totalBytes: s.blocks * s.bsize },
          memory: { rssBytes: process.memoryUsage.rss(), systemFreeBytes: freemem(), systemTotalBytes: totalmem() },
        };
      },
      events: true,
    };
    const outcome = options.outcome === 'fail' ? 'fail' : 'succeed';
    const device = await SimulatedDevice.start({
      thing: options.thing,
      target: options.target,
      shared,
      outcome: () => outcome,
      ...(options.active === undefined ? {} : { active: options.active }),
    });
    return new LightDevice(device);
  }

  /** Resolves when `count` jobs have ended on this device. */
  async waitFor(count: number, timeoutMs: number): Promise<Received[]> {
    const deadline = Date.now() + timeoutMs;
    while (this.device.seen.length < count) {
      if (Date.now() > deadline)
        throw new Error(`${this.thing}: ${this.device.seen.length}/${count} jobs after ${timeoutMs} ms`);
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
    return this.received;
  }

  close(): Promise<void> {
    return this.device.close();
  }
}
