import { hostname } from 'node:os';
import { join } from 'node:path';
import type { MqttClient } from 'mqtt';
import {
  type JobsErrorCode,
  encodeJobsMessage,
  epochNow,
  isTerminal,
  parseTopic,
  serviceFilters,
} from '../../device-agent/protocol/index.js';
import { isOutpostError, messageOf } from '../../runtime/errors.js';
import { logger } from '../../runtime/log.js';
import { BlobStore } from '../artifacts/blobs.js';
import { Inflight } from '../inflight.js';
import { type ExecutionView, notifyChanges, pendingSignature, toExecutionState } from '../job-executions.js';
import { JOBS_HANDLERS, type JobsContext } from '../jobs-handlers.js';
import { type FleetTls, closeBroker, connectPreferringMqtt5 } from '../mqtt.js';
import { FleetInference } from '../infer.js';
import type { ExecutionRecord, FleetStore } from '../store/index.js';
import { StreamsServer } from '../streams-server.js';
import { StoreExecutions } from './jobs-store.js';
import { FleetOperations } from './operations.js';
import {
  DEFAULT_OWNERSHIP,
  Ownership,
  type OwnershipMode,
  type OwnershipOptions,
  sharedSubscriptionsDeliver,
} from './ownership.js';
import { readRollout, isPaced } from '../rollouts/plan.js';
import { RegistryWorker } from './registry-worker.js';
import { Rollbacks } from './rollback.js';
import { DEFAULT_ROLLOUTS, RolloutController, type RolloutControllerOptions } from './rollout-controller.js';
import { DEFAULT_SWEEPER, Sweeper, type SweeperOptions } from './sweeper.js';

const log = logger('fleet.service');

/**
 * `outpost fleet serve`: one worker. It plays AWS IoT Jobs and MQTT-based file delivery for every deployment in the
 * database, keeps the registry from the devices' status messages, and sweeps timeouts. Several workers may share one
 * PostgreSQL database and one broker: device requests reach them through MQTT 5 shared subscriptions
 * (`$share/<group>/…` [MQTT 5.0 §4.8.2]), and they coordinate only through conditional updates in the database. A
 * worker holds nothing another cannot rebuild from it (caches of immutable rows, open files of the artifact store).
 */
export interface FleetServiceOptions {
  readonly brokerUrl: string;
  readonly tls?: FleetTls;
  readonly username?: string;
  readonly password?: string;
  readonly store: FleetStore;
  /** Artifact blobs, uploads and scratch space. */
  readonly dataDir: string;
  /** Public keys (PEM text or paths): artifacts must be signed by one of them. */
  readonly trustedKeys?: readonly string[];
  /** Shared subscription group: workers of one fleet use the same name. */
  readonly shareGroup?: string; // default "outpost-fleet"
  readonly workerId?: string;
  readonly sweeper?: SweeperOptions;
  readonly ownership?: OwnershipOptions;
  readonly rollouts?: RolloutControllerOptions;
  readonly now?: () => number;
}

export const DEFAULT_SHARE_GROUP = 'outpost-fleet';

export interface FleetServiceStats {
  readonly jobsRequests: number;
  readonly malformedRequests: number;
  readonly failedRequests: number;
  readonly statusMessages: number;
  readonly malformedStatus: number;
  readonly blocksServed: number;
  readonly bytesServed: number;
}

export class FleetService {
  readonly operations: FleetOperations;
  /** Asynchronous inference requests to devices, answered on this worker's reply topic (fleet/infer.ts). */
  readonly inference: FleetInference;
  readonly workerId: string;
  readonly ownership: Ownership;
  readonly rollouts: RolloutController;
  private readonly executions: StoreExecutions;
  private readonly registry: RegistryWorker;
  private readonly sweeper: Sweeper;
  private readonly streams: StreamsServer;
  private readonly inflight = new Inflight();
  private readonly context: JobsContext;
  private readonly counts = { jobsRequests: 0, malformedRequests: 0, failedRequests: 0 };
  private readonly filters: string[];
  private closing: Promise<void> | undefined;
  private readonly now: () => number;
  private readonly listener = (topic: string, payload: Buffer): void => {
    this.dispatch(topic, payload);
  };

  private constructor(
    private readonly options: FleetServiceOptions,
    private readonly client: MqttClient,
    readonly protocolVersion: 4 | 5,
    mode: OwnershipMode,
  ) {
    this.now = options.now ?? Date.now;
    this.inference = new FleetInference(client, protocolVersion);
    this.workerId = options.workerId ?? `${hostname()}-${process.pid}`;
    const { store } = options;
    this.ownership = new Ownership(mode, store, this.workerId, this.now, options.ownership ?? DEFAULT_OWNERSHIP);
    const blobs = new BlobStore(join(options.dataDir, 'blobs'));
    const notify = (thing: string) => this.notify(thing);
    this.executions = new StoreExecutions(store, this.now, (execution, previous) => this.changed(execution, previous));
    this.registry = new RegistryWorker(store, this.executions, notify, this.now);
    this.sweeper = new Sweeper(store, this.executions, notify, this.now, options.sweeper ?? DEFAULT_SWEEPER);
    this.operations = new FleetOperations(
      store,
      blobs,
      this.executions,
      notify,
      options.dataDir,
      options.trustedKeys ?? [],
      this.now,
    );
    const rollbacks = new Rollbacks(store, (request) => this.operations.deploy(request), notify, this.now);
    this.rollouts = new RolloutController(
      store,
      this.executions,
      rollbacks,
      notify,
      this.now,
      options.rollouts ?? DEFAULT_ROLLOUTS,
    );
    this.operations.onRollout(this.rollouts);
    const share = (filter: string) =>
      mode === 'shared' ? `$share/${options.shareGroup ?? DEFAULT_SHARE_GROUP}/${filter}` : filter;
    this.filters = serviceFilters.jobRequests().map(share);
    this.streams = new StreamsServer({
      client,
      accept: (thing) => this.ownership.owns(thing),
      source: {
        filters: ['$aws/things/+/streams/+/describe/+', '$aws/things/+/streams/+/get/+'].map(share),
        resolve: async (streamId) => {
          const artifact = await store.getArtifactByStream(streamId);
          if (artifact === undefined) return undefined;
          // One artifact, two streams: the archive layout's and the files layout's (fleet/artifacts/ingest.ts).
          const files = artifact.delivery?.streamId === streamId ? artifact.delivery.files : artifact.files;
          return {
            streamId,
            version: artifact.streamVersion,
            description: `${artifact.name} ${artifact.version} ${artifact.target.profile}`,
            files: files.map((f) => ({ fileId: f.fileId, path: blobs.path(f.sha256) })),
          };
        },
      },
    });
    this.context = {
      executions: this.executions,
      now: () => this.now(),
      changing: async (thing, change) => {
        const before = await pendingSignature(this.executions, thing);
        const result = await change();
        await notifyChanges(
          this.executions,
          thing,
          before,
          (topic, message) => this.publish(topic, message),
          this.now(),
        );
        return result;
      },
      reply: (topic, message) => this.publish(topic, message),
      reject: (topic, code, message, token, state) => this.reject(topic, code, message, token, state),
    };
  }

  static async start(options: FleetServiceOptions): Promise<FleetService> {
    const { client, protocolVersion } = await connectPreferringMqtt5({
      url: options.brokerUrl,
      clientId: `outpost-fleet-${options.workerId ?? `${hostname()}-${process.pid}`}`.slice(0, 128),
      ...(options.tls === undefined ? {} : { tls: options.tls }),
      ...(options.username === undefined ? {} : { username: options.username }),
      ...(options.password === undefined ? {} : { password: options.password }),
    });
    const group = options.shareGroup ?? DEFAULT_SHARE_GROUP;
    const mode: OwnershipMode =
      protocolVersion === 5 && (await sharedSubscriptionsDeliver(client, group)) ? 'shared' : 'partitioned';
    if (mode === 'partitioned') {
      log.warn(
        { mqtt: protocolVersion },
        protocolVersion === 5
          ? 'the broker does not deliver $aws/… topics through shared subscriptions: workers split things through the database instead'
          : 'MQTT 3.1.1 has no shared subscriptions: workers split things through the database instead',
      );
    }
    const service = new FleetService(options, client, protocolVersion, mode);
    try {
      await service.ownership.start();
      client.on('message', service.listener);
      // Status is not shared: every worker sees every device's status, retained ones included (a shared
      // subscription gets no retained messages [MQTT 5.0 §4.8.2]); recording one twice changes nothing.
      await client.subscribeAsync([...service.filters, serviceFilters.status()], { qos: 1 });
      await service.streams.start();
      await service.inference.start();
      service.sweeper.start();
      service.rollouts.start();
    } catch (error) {
      await closeBroker(client);
      throw error;
    }
    log.info({ worker: service.workerId, mqtt: protocolVersion, mode }, 'fleet serving');
    return service;
  }

  stats(): FleetServiceStats {
    const streams = this.streams.stats();
    return {
      ...this.counts,
      ...this.registry.stats,
      blocksServed: streams.blocksServed,
      bytesServed: streams.bytesServed,
    };
  }

  get connected(): boolean {
    return this.client.connected;
  }

  /** SIGTERM: stop taking requests, answer the ones taken, then disconnect. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.client.removeListener('message', this.listener);
      await this.sweeper.stop();
      await this.rollouts.stop();
      await this.inflight.settle();
      await this.ownership.stop();
      await this.streams.close();
      await this.inference.close();
      if (this.client.connected)
        await this.client.unsubscribeAsync([...this.filters, serviceFilters.status()]).catch(() => undefined);
      await closeBroker(this.client);
      log.info({ worker: this.workerId }, 'fleet stopped');
    })();
    return this.closing;
  }

  /** Tells a thing what it can start now (notify-next and notify, whatever it was told before). */
  async notify(thing: string): Promise<void> {
    await notifyChanges(
      this.executions,
      thing,
      undefined,
      (topic, message) => this.publish(topic, message),
      this.now(),
    );
  }

  private dispatch(topic: string, payload: Buffer): void {
    const parsed = parseTopic(topic);
    if (parsed === undefined) return;
    let task: Promise<void> | undefined;
    if (parsed.api === 'outpost' && parsed.operation === 'status') task = this.registry.onStatus(parsed.thing, payload);
    else if (parsed.api === 'jobs' && parsed.reply === undefined) {
      const { operation, thing, jobId } = parsed;
      if (operation === 'notify' || operation === 'notify-next' || !this.ownership.owns(thing)) return;
      this.counts.jobsRequests++;
      task = JOBS_HANDLERS[operation](this.context, { thing, payload, ...(jobId === undefined ? {} : { jobId }) });
    }
    if (task === undefined) return;
    this.inflight.track(task, (error) => {
      this.counts.failedRequests++;
      // A database that is down or locked past its retries: the device asks again (its request times out).
      log.error({ err: isOutpostError(error) ? error.toJSON() : messageOf(error), topic }, 'request failed');
    });
  }

  /** After every execution change: a terminal one may complete its deployment (conditional; any worker may do it). */
  private changed(execution: ExecutionRecord, previous: string | undefined): void {
    log.info(
      { jobId: execution.jobId, thing: execution.thing, status: execution.status, previous },
      'execution changed',
    );
    if (!isTerminal(execution.status)) return;
    this.rollouts.poke();
    this.inflight.track(this.completeIfDone(execution.jobId), (error) => {
      log.warn({ error: messageOf(error), jobId: execution.jobId }, 'completion check failed; the next change retries');
    });
  }

  private async completeIfDone(jobId: string): Promise<void> {
    const { store } = this.options;
    const counts = await store.countExecutions(jobId);
    if ((counts.QUEUED ?? 0) + (counts.IN_PROGRESS ?? 0) > 0) return;
    const deployment = await store.getDeployment(jobId);
    if (deployment?.state !== 'ACTIVE') return;
    // A paced rollout completes through its controller, once its last wave is DONE (its abort criteria judged it).
    if (isPaced(readRollout(deployment.strategy, deployment.id))) return;
    // A dynamic group's deployment is continuous (IoT Jobs' targetSelection CONTINUOUS): things that join the group
    // later still get it, so it stays ACTIVE until canceled.
    if (deployment.target.group !== undefined && (await store.getGroup(deployment.target.group))?.kind === 'dynamic')
      return;
    await store.setDeploymentState(jobId, deployment.versionNumber, 'COMPLETED', this.now()).catch((error: unknown) => {
      if (!isOutpostError(error, 'STORE_CONFLICT')) throw error; // another worker completed it
    });
  }

  private async reject(
    topic: string,
    code: JobsErrorCode,
    message: string,
    clientToken: string | undefined,
    state: ExecutionView | undefined,
  ): Promise<void> {
    if (code === 'InvalidJson' || code === 'InvalidRequest') {
      this.counts.malformedRequests++;
      log.warn({ topic, code, malformed: this.counts.malformedRequests }, `malformed jobs request: ${message}`);
    }
    await this.publish(topic, {
      code,
      message,
      ...(clientToken === undefined ? {} : { clientToken }),
      timestamp: epochNow(this.now()),
      ...(state === undefined ? {} : { executionState: toExecutionState(state) }),
    });
  }

  private async publish(topic: string, message: object): Promise<void> {
    if (!this.client.connected) return;
    await this.client.publishAsync(topic, encodeJobsMessage(message), { qos: 1 });
  }
}
