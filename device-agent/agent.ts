import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { OutpostError, isOutpostError, messageOf } from '../runtime/errors.js';
import { logger } from '../runtime/log.js';
import { retry } from '../runtime/retry.js';
import type { Model } from '../runtime/model/index.js';
import type { Pipeline } from '../runtime/pipeline/index.js';
import { readTokenFile, InferenceServer } from '../runtime/server/index.js';
import type { AgentConfig } from './config.js';
import {
  acceptExecution,
  closeIfEnded,
  reportUnrecorded,
  runDeployment,
  type DeploymentContext,
} from './deployment/runner.js';
import { applyPlan } from './serving/plan.js';
import { JobsClient } from './jobs-client.js';
import { NextJobs } from './next-jobs.js';
import { offlineStatusPayload, outpostTopics } from './protocol/index.js';
import type { ActiveModels } from './serving/active-models.js';
import { CaptureUploader } from './serving/capture-upload.js';
import { driftEvent } from './serving/drift.js';
import { AsyncInference } from './serving/async-infer.js';
import { createServingStack, servingStatus, type ServingStack } from './serving/stack.js';
import { Spool } from './storage/spool.js';
import { DeploymentStore } from './storage/deployment-records.js';
import { deploymentSummary, diskUsage, hostReport, memoryUsage } from './storage/status.js';
import type { AgentStatus } from './storage/status.js';
import { ModelStore } from './storage/model-store.js';
import { createTransport } from './transport/index.js';
import type { Transport } from './transport/types.js';
import { StatusReporter } from './status-reporter.js';

const log = logger('agent');

export interface AgentOptions {
  readonly config: AgentConfig;
  /** Supplied by tests that bring their own connection; otherwise made from `config.broker`. */
  readonly transport?: Transport;
}

/**
 * The device agent (the Greengrass role, for models): serves the active models from disk at once, with or without a
 * broker; takes IoT Jobs one at a time and runs each deployment through its persisted steps; reports through a
 * bounded on-disk spool that flushes when the broker is reachable.
 */
export class Agent {
  readonly config: AgentConfig;
  private stack: ServingStack | undefined;
  private uploader: CaptureUploader | undefined;
  private asyncInference: AsyncInference | undefined;
  private readonly store: ModelStore;
  private readonly deployments: DeploymentStore;
  private readonly spool: Spool;
  private readonly transport: Transport | undefined;
  private readonly jobs: JobsClient | undefined;
  private server: InferenceServer | undefined;
  private httpUrl: string | undefined;
  private readonly abort = new AbortController();
  private readonly nextJobs: NextJobs | undefined;
  private readonly startedAt = new Date();
  private working: Promise<void> | undefined;
  private again = false;
  private readonly reporter: StatusReporter;
  private readonly tested = new Map<string, Model | Pipeline>();
  /** What this device is (target profile, versions): detected once, reported in every status. */
  private readonly host: NonNullable<AgentStatus['host']> = hostReport();

  constructor(options: AgentOptions) {
    const { config } = options;
    this.config = config;
    this.store = new ModelStore(join(config.dataDir, 'store'));
    this.deployments = new DeploymentStore(join(config.dataDir, 'deployments'));
    this.spool = new Spool(join(config.dataDir, 'spool'), config.spool, config.retry.spool);
    this.transport = options.transport ?? (config.broker === undefined ? undefined : this.makeTransport(config));
    this.jobs =
      this.transport === undefined
        ? undefined
        : new JobsClient({ transport: this.transport, thing: config.thing, timeoutMs: config.jobsRequestTimeoutMs });
    this.nextJobs =
      this.jobs === undefined ? undefined : new NextJobs(this.jobs, config.retry.startNext, this.abort.signal);
    this.reporter = new StatusReporter({
      thing: config.thing,
      dataDir: config.dataDir,
      intervalSeconds: config.statusIntervalSeconds,
      transport: this.transport,
      build: () => this.status(),
    });
  }

  private makeTransport(config: AgentConfig): Transport {
    const broker = config.broker;
    if (broker === undefined) throw new OutpostError('CONFIG_INVALID', 'no broker configured');
    return createTransport(broker.transport, {
      url: broker.url,
      clientId: config.thing,
      tls: {
        ...(broker.ca === undefined ? {} : { ca: broker.ca }),
        ...(broker.cert === undefined ? {} : { cert: broker.cert }),
        ...(broker.key === undefined ? {} : { key: broker.key }),
      },
      will: {
        topic: outpostTopics.status(config.thing),
        payload: offlineStatusPayload(config.thing),
        qos: 1,
        retain: true,
      },
    });
  }

  get trustedKeys(): readonly string[] {
    return this.config.trustKeys;
  }

  /** Signatures are required unless the operator explicitly allowed unsigned artifacts with no trust keys. */
  get requireSignature(): boolean {
    return this.config.trustKeys.length > 0 || !this.config.allowUnsigned;
  }

  /** The served models; there are none before start(). */
  get models(): ActiveModels {
    if (this.stack === undefined) throw new OutpostError('INTERNAL', 'agent used before start()');
    return this.stack.models;
  }

  async start(): Promise<{ http: string }> {
    const { dataDir } = this.config;
    for (const dir of ['store', 'deployments', 'downloads', 'spool'])
      await mkdir(join(dataDir, dir), { recursive: true });
    await this.spool.open();
    const stack = await createServingStack(this.config, [this.reporter.observer], (e) => this.emit(driftEvent(e)));
    this.stack = stack;
    await this.serveInstalled();
    const { host, port, socket, tokenFile } = this.config.http;
    const token = tokenFile === undefined ? undefined : await readTokenFile(tokenFile, 'CONFIG_INVALID');
    this.server = new InferenceServer({
      repository: stack.models,
      host,
      port,
      ...(socket === undefined ? {} : { socket }),
      ...(token === undefined ? {} : { token }),
      metrics: () => stack.metrics.text(),
      pipelines: stack.models.pipelines,
      pipelineMetrics: stack.metrics.pipelines,
    });
    this.startCaptureUpload(stack);
    this.httpUrl = (await this.server.listen()).url;
    this.reporter.start();
    await this.reporter.refresh();
    if (this.transport !== undefined) {
      // A new next job (notify-next) starts a round; a round only ever runs one deployment at a time.
      this.jobs?.onNextJob(() => this.wake());
      this.transport.onConnectionChange((connected) => {
        void this.reporter.refresh();
        if (connected) this.onConnected();
      });
      if (this.config.async.enabled) {
        const { thing, async: limits } = this.config;
        this.asyncInference = new AsyncInference({ thing, transport: this.transport, models: stack.models, ...limits });
        this.asyncInference.start();
      }
      // Not awaited: the agent serves offline and comes online whenever the broker does.
      this.transport
        .connect()
        .catch((error: unknown) => log.warn({ error: messageOf(error) }, 'broker not reachable yet; serving offline'));
    }
    // Unfinished deployments resume even offline (download waits for the broker; later steps do not need it).
    this.work();
    return { http: this.httpUrl };
  }

  /** Sealed capture files go to the fleet through the spool while online (docs/serving-operations.md). */
  private startCaptureUpload(stack: ServingStack): void {
    const transport = this.transport;
    if (stack.capture === undefined || !this.config.capture.upload || transport === undefined) return;
    this.uploader = new CaptureUploader({
      thing: this.config.thing,
      capture: stack.capture,
      spool: this.spool,
      send: (entry) => transport.publish(entry.topic, entry.payload, { qos: entry.qos }),
      retry: this.config.retry.upload,
      connected: () => transport.connected,
      onConnectionChange: (listener) => transport.onConnectionChange(listener),
    });
    this.uploader.start();
  }

  /** Every installed model as its serving plan says (production weights, shadow); a failure to load is logged. */
  private async serveInstalled(): Promise<void> {
    const { store, models, trustedKeys, requireSignature, stack } = this;
    const ctx = { store, models, trustedKeys, requireSignature, tuning: stack?.tuning, verdicts: stack?.verdicts };
    for (const model of await this.store.models()) {
      const plan = await this.store.servingPlan(model);
      if (plan === undefined) continue;
      try {
        await applyPlan(ctx, model, plan);
      } catch (error) {
        log.error({ model, plan, error: messageOf(error) }, 'installed model failed to load');
      }
    }
  }

  private onConnected(): void {
    const transport = this.transport;
    const jobs = this.jobs;
    if (transport === undefined || jobs === undefined) return;
    void (async () => {
      try {
        // Subscribing can time out on a busy broker: retried like start-next (a refusal is logged below).
        await retry(() => jobs.start(), {
          policy: this.config.retry.startNext,
          signal: this.abort.signal,
          network: 'stop',
        });
        await this.reporter.publish();
        await this.flushSpool(transport);
        this.wake();
      } catch (error) {
        if (!this.abort.signal.aborted) log.warn({ error: messageOf(error) }, 'could not finish connecting');
      }
    })();
  }

  /** Something says there may be a job now (notify-next, a reconnect): a start-next backing off asks at once. */
  private wake(): void {
    this.nextJobs?.wake();
    this.work();
  }

  private flushSpool(transport: Transport): Promise<number> {
    return this.spool.flush((entry) => transport.publish(entry.topic, entry.payload, { qos: entry.qos }), {
      signal: this.abort.signal,
    });
  }

  /** One deployment at a time: a request to work while working runs another round afterwards. */
  private work(): void {
    if (this.working !== undefined) {
      this.again = true;
      return;
    }
    this.working = this.round()
      .catch((error: unknown) => {
        if (!this.abort.signal.aborted) log.error({ error: messageOf(error) }, 'deployment round failed');
      })
      .finally(() => {
        this.working = undefined;
        if (this.again && !this.abort.signal.aborted) {
          this.again = false;
          this.work();
        }
      });
  }

  private context(): DeploymentContext {
    const transport = this.transport;
    const jobs = this.jobs;
    if (transport === undefined || jobs === undefined)
      throw new OutpostError('CONFIG_INVALID', 'deployments need a broker');
    return {
      config: this.config,
      store: this.store,
      deployments: this.deployments,
      models: this.models,
      guardrails: this.stack?.guardrails,
      tuning: this.stack?.tuning,
      verdicts: this.stack?.verdicts,
      jobs,
      transport,
      downloadsDir: join(this.config.dataDir, 'downloads'),
      trustedKeys: this.trustedKeys,
      requireSignature: this.requireSignature,
      event: (event) => this.emit(event),
      changed: () => void this.reporter.refresh(),
      signal: this.abort.signal,
      tested: this.tested,
    };
  }

  private async round(): Promise<void> {
    if (this.transport === undefined) return;
    const ctx = this.context();
    for (const state of await this.deployments.unfinished()) {
      if (await closeIfEnded(ctx, state)) continue;
      const resumed = await this.deployments.write({ ...state, attempts: state.attempts + 1 });
      log.info({ jobId: state.jobId, step: state.step, attempts: resumed.attempts }, 'resuming deployment');
      await runDeployment(ctx, resumed);
    }
    while (this.transport.connected && !this.abort.signal.aborted && this.nextJobs !== undefined) {
      const execution = await this.nextJobs.next();
      if (execution === 'again') continue;
      if (execution === undefined) return;
      log.info({ jobId: execution.jobId }, 'job started');
      let state;
      try {
        state = await acceptExecution(ctx, execution);
      } catch (error) {
        // Not even the record can be written (a full disk): nothing was started, so the job fails here and now.
        const code = isOutpostError(error) ? error.code : 'INTERNAL';
        const reported = await reportUnrecorded(ctx, execution.jobId, execution.versionNumber, {
          reasonCode: code,
          reason: `accepting: ${messageOf(error)}`.slice(0, 1000),
        });
        // Unreported, start-next would hand the same job back at once: wait for the next notification instead.
        if (!reported) return;
        continue;
      }
      await runDeployment(ctx, state);
      await this.deployments.prune();
    }
  }

  private async emit(event: Record<string, unknown>): Promise<void> {
    await this.spool.push({
      topic: outpostTopics.events(this.config.thing),
      payload: JSON.stringify({ thing: this.config.thing, ...event }),
      qos: 1,
    });
    const transport = this.transport;
    if (transport?.connected === true) void this.flushSpool(transport);
  }

  async status(): Promise<AgentStatus> {
    const now = new Date();
    return {
      thing: this.config.thing,
      connected: this.transport?.connected ?? false,
      pid: process.pid,
      startedAt: this.startedAt.toISOString(),
      updatedAt: now.toISOString(),
      uptimeSeconds: (now.getTime() - this.startedAt.getTime()) / 1000,
      statusIntervalSeconds: this.config.statusIntervalSeconds,
      ...(this.httpUrl === undefined ? {} : { http: this.httpUrl }),
      host: this.host,
      ...(this.stack === undefined
        ? { active: [], shadows: [], guardrails: [], health: [] }
        : servingStatus(this.stack)),
      deployments: (await this.deployments.all()).map(deploymentSummary),
      disk: await diskUsage(this.config.dataDir),
      memory: memoryUsage(),
      spool: { entries: this.spool.size, dropped: this.spool.dropped, refused: this.spool.refused },
      ...(this.asyncInference === undefined ? {} : { async: this.asyncInference.stats() }),
    };
  }

  async stop(): Promise<void> {
    this.abort.abort();
    this.reporter.stop();
    this.jobs?.stop();
    await this.working?.catch(() => undefined);
    this.uploader?.stop();
    await this.uploader?.idle();
    await this.asyncInference?.stop();
    await this.server?.close();
    await this.transport?.close().catch(() => undefined);
    for (const model of this.tested.values()) await model.release();
    await this.stack?.models.close();
    await this.stack?.capture?.close();
    await this.reporter.idle();
  }
}
