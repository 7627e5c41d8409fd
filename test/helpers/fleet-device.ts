import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { downloadArtifact } from '../../device-agent/download.js';
import { JobsClient, JobsRejectedError, SupersededError } from '../../device-agent/jobs-client.js';
import {
  type JobDocument,
  type JobExecution,
  offlineStatusPayload,
  outpostTopics,
  parseJobDocument,
} from '../../device-agent/protocol/index.js';
import { MqttJsTransport } from '../../device-agent/transport/index.js';
import type { Transport } from '../../device-agent/transport/types.js';

/**
 * A light device for fleet tests and benches: the agent's own Jobs client, block downloader (verified against the
 * index and the archive's sha256) and MQTT.js transport, with the agent's status message and last will, reporting a
 * target profile of our choosing. Install and self-test are a NAMED STAND-IN (no ONNX Runtime): once the verified
 * archive is on disk the device reports SUCCEEDED (or FAILED, when told to) with the statusDetails a real agent sends.
 */
const REPORT_ATTEMPTS = 8; // final updates tried before the device gives up

export interface LightDeviceOptions {
  readonly url: string;
  readonly thing: string;
  readonly dir: string;
  readonly target: { readonly profile: string; readonly cpuProfile?: string; readonly arch: 'x86_64' | 'arm64' };
  readonly outcome?: 'succeed' | 'fail';
  /** Active model versions to report (what a rollback would return to). */
  readonly active?: readonly { model: string; version: string }[];
  readonly tls?: { ca?: string; cert?: string; key?: string };
  readonly maxInFlightBlocks?: number;
  readonly encoding?: 'json' | 'cbor';
}

export interface Received {
  readonly jobId: string;
  readonly document: JobDocument;
  readonly archive: string;
  readonly status: 'SUCCEEDED' | 'FAILED' | 'REJECTED';
}

export class LightDevice {
  readonly received: Received[] = [];
  /** Rounds that ended in an error (a request unanswered, a download given up), for failure messages. */
  readonly errors: string[] = [];
  private working: Promise<void> | undefined;
  private again = false;
  private active: { model: string; version: string }[];
  private stopped = false;

  private constructor(
    private readonly options: LightDeviceOptions,
    readonly transport: Transport,
    private readonly jobs: JobsClient,
  ) {
    this.active = [...(options.active ?? [])];
  }

  get thing(): string {
    return this.options.thing;
  }

  static async start(options: LightDeviceOptions): Promise<LightDevice> {
    const transport = new MqttJsTransport({
      url: options.url,
      clientId: options.thing,
      ...(options.tls === undefined ? {} : { tls: options.tls }),
      will: {
        topic: outpostTopics.status(options.thing),
        payload: offlineStatusPayload(options.thing),
        qos: 1,
        retain: true,
      },
    });
    const jobs = new JobsClient({ transport, thing: options.thing });
    const device = new LightDevice(options, transport, jobs);
    jobs.onNextJob(() => device.work());
    await transport.connect();
    await jobs.start();
    await device.publishStatus();
    device.work();
    return device;
  }

  /** Resolves when `count` jobs have ended on this device. */
  async waitFor(count: number, timeoutMs: number): Promise<Received[]> {
    const deadline = Date.now() + timeoutMs;
    while (this.received.length < count) {
      if (Date.now() > deadline)
        throw new Error(`${this.options.thing}: ${this.received.length}/${count} jobs after ${timeoutMs} ms`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    return this.received;
  }

  async close(): Promise<void> {
    this.stopped = true;
    this.jobs.stop();
    await this.working?.catch(() => undefined);
    await this.transport.close();
  }

  /** The final update, retried as the agent's report step does: a worker may die holding the request. */
  private async report(jobId: string, status: 'SUCCEEDED' | 'FAILED', details: Record<string, string>): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.jobs.update(jobId, status, details);
        return;
      } catch (error) {
        // A retry of an update the service applied before its reply was lost (its worker died): already there.
        if (error instanceof JobsRejectedError && error.executionState?.status === status) return;
        if (error instanceof JobsRejectedError || attempt >= REPORT_ATTEMPTS || this.stopped) throw error;
        await new Promise((resolve) => setTimeout(resolve, 500));
      }
    }
  }

  private async publishStatus(): Promise<void> {
    const { thing, target } = this.options;
    const status = {
      thing,
      connected: true,
      host: {
        arch: target.arch,
        profile: target.profile,
        cpuProfile: target.cpuProfile ?? target.profile,
        agentVersion: 'light-device',
      },
      active: this.active.map((m) => ({ ...m, variant: 'fp32', backend: 'native', role: 'production' })),
    };
    await this.transport.publish(outpostTopics.status(thing), JSON.stringify(status), { qos: 1, retain: true });
  }

  private work(): void {
    if (this.working !== undefined) {
      this.again = true;
      return;
    }
    this.working = this.round()
      // A request that timed out: the next notification starts another round.
      .catch((error: unknown) => {
        this.errors.push(error instanceof Error ? error.message : String(error));
      })
      .finally(() => {
        this.working = undefined;
        if (this.again && !this.stopped) {
          this.again = false;
          this.work();
        }
      });
  }

  private async round(): Promise<void> {
    while (!this.stopped) {
      let execution: JobExecution | undefined;
      try {
        execution = await this.jobs.startNext();
      } catch (error) {
        if (error instanceof SupersededError) continue;
        throw error;
      }
      if (execution === undefined) return;
      await this.run(execution);
    }
  }

  private async run(execution: JobExecution): Promise<void> {
    const { jobId } = execution;
    const document = parseJobDocument(
      typeof execution.jobDocument === 'string' ? JSON.parse(execution.jobDocument) : execution.jobDocument,
    );
    const { name, version } = document.model;
    const arch = document.target?.arch;
    if (arch !== undefined && arch !== 'any' && arch !== this.options.target.arch) {
      await this.jobs.update(
        jobId,
        'REJECTED',
        { reasonCode: 'ARTIFACT_TARGET_MISMATCH', reason: `for ${arch}` },
        execution.versionNumber,
      );
      this.received.push({ jobId, document, archive: '', status: 'REJECTED' });
      return;
    }
    const dir = join(this.options.dir, this.options.thing, jobId);
    await mkdir(dir, { recursive: true });
    const archive = await downloadArtifact({
      transport: this.transport,
      thing: this.options.thing,
      document,
      dir,
      encoding: this.options.encoding ?? 'cbor', // the agent's default: blocks as raw bytes
      maxInFlightBlocks: this.options.maxInFlightBlocks ?? 16,
      requestTimeoutMs: 1_000,
      maxStalls: 60,
    });
    const previous = this.active.find((m) => m.model === name)?.version;
    const details = { model: name, version, ...(previous === undefined ? {} : { previousVersion: previous }) };
    if (this.options.outcome === 'fail') {
      await this.jobs.update(jobId, 'FAILED', {
        ...details,
        reasonCode: 'SELF_TEST_FAILED',
        reason: 'stand-in told to fail',
      });
      this.received.push({ jobId, document, archive, status: 'FAILED' });
      return;
    }
    this.active = [...this.active.filter((m) => m.model !== name), { model: name, version }];
    await this.publishStatus();
    await this.report(jobId, 'SUCCEEDED', { ...details, variant: 'fp32', backend: 'native' });
    this.received.push({ jobId, document, archive, status: 'SUCCEEDED' });
  }
}
