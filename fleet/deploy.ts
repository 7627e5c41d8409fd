import { rm } from 'node:fs/promises';
import type { MqttClient } from 'mqtt';
import { type JobDocument, type JobStatus, type StatusDetails, isTerminal } from '../device-agent/protocol/index.js';
import { OutpostError } from '../runtime/errors.js';
import { logger } from '../runtime/log.js';
import { STREAM_VERSION, prepareArtifact } from './deploy-artifact.js';
import { type ExecutionEvent, JobsService } from './jobs-service.js';
import { type FleetTls, closeBroker, connectBroker } from './mqtt.js';
import { checkName } from './protocol-errors.js';
import { type StreamsServerOptions, StreamsServer } from './streams-server.js';

/**
 * `deploy()`: ship one artifact to things over MQTT, playing both AWS services on one MQTT.js connection: the stream
 * (MQTT-based file delivery) carrying the artifact (its delivery index and files, or its archive and block index),
 * and the job (IoT Jobs) whose document tells
 * each device what to fetch. With `wait`, resolves once every execution is terminal (or the timeout ends the rest);
 * without, returns a Deployment that serves until `close()`.
 */
export interface DeployOptions {
  /** An artifact directory or `.tar.gz`, or a bare `.onnx`/`.ort` model (wrapped first); verified before it ships. */
  readonly artifact: string;
  /** A bare model's wrapper is signed with this ed25519 private key (PEM text or path). */
  readonly signingKey?: string;
  readonly things: readonly string[];
  readonly brokerUrl: string;
  readonly tls?: FleetTls;
  readonly username?: string;
  readonly password?: string;
  /** Default `deploy-<model>-<version>-<random>`; also the stream id. */
  readonly jobId?: string;
  readonly blockSize?: number; // bytes, default 64 KiB
  readonly keepVersions?: number;
  /** canary / shadow instead of replace (job document `rollout`). */
  readonly rollout?: JobDocument['rollout'];
  readonly notes?: string;
  readonly trustedKeys?: readonly string[];
  /** Resolve with the outcome once every execution is terminal, then stop serving. */
  readonly wait?: boolean;
  /** With `wait`: end still-pending executions after this long (IN_PROGRESS → TIMED_OUT, QUEUED → CANCELED). */
  readonly timeoutMs?: number; // milliseconds, default 30 minutes
  /** An execution IN_PROGRESS this long becomes TIMED_OUT (CreateJob timeoutConfig.inProgressTimeoutInMinutes). */
  readonly inProgressTimeoutMs?: number; // milliseconds, default none
  readonly workDir?: string;
  /**
   * Stream layout (docs/job-document.md, "Stream layouts"): `files` (default) lets each device fetch the manifest
   * and then only the variants it will run; `archive` ships the one `.tar.gz`, as on AWS IoT Core.
   */
  readonly layout?: 'archive' | 'files';
  readonly onEvent?: (event: DeployEvent) => void;
  /** TEST HOOK: fault injection in the streams server (streams-server.ts, BlockFaultHook). */
  readonly testHooks?: StreamsServerOptions['testHooks'];
}

export type DeployEvent =
  | {
      readonly type: 'ready';
      readonly jobId: string;
      readonly document: JobDocument;
      readonly things: readonly string[];
    }
  | ({ readonly type: 'execution' } & ExecutionEvent)
  /** A block of the artifact went out to a thing: `bytes` of `total` served to it so far (re-fetches count). */
  | {
      readonly type: 'download';
      readonly jobId: string;
      readonly thing: string;
      readonly bytes: number;
      readonly total: number;
    };

export interface ThingOutcome {
  readonly thing: string;
  readonly status: JobStatus;
  readonly statusDetails: StatusDetails;
}

export interface DeployResult {
  readonly jobId: string;
  readonly things: readonly ThingOutcome[];
}

export interface Deployment {
  readonly jobId: string;
  readonly document: JobDocument;
  readonly jobs: JobsService;
  readonly streams: StreamsServer;
  /** Every thing's execution as it stands. */
  result(): DeployResult;
  /** Resolves when every execution is terminal. */
  settled(): Promise<DeployResult>;
  /** Stops serving, disconnects, removes the scratch files; returns the executions as they stand. Idempotent. */
  close(): Promise<DeployResult>;
}

export const DEFAULT_DEPLOY_TIMEOUT_MS = 30 * 60_000; // milliseconds

const log = logger('fleet.deploy');

export function deploy(options: DeployOptions & { readonly wait: true }): Promise<DeployResult>;
export function deploy(options: DeployOptions & { readonly wait?: false }): Promise<Deployment>;
export async function deploy(options: DeployOptions): Promise<DeployResult | Deployment> {
  const deployment = await start(options);
  if (options.wait !== true) return deployment;
  const timeoutMs = options.timeoutMs ?? DEFAULT_DEPLOY_TIMEOUT_MS;
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), timeoutMs);
  });
  try {
    const outcome = await Promise.race([deployment.settled(), timedOut]);
    if (outcome === 'timeout') await endPending(deployment, timeoutMs);
  } finally {
    clearTimeout(timer);
  }
  return deployment.close();
}

async function start(options: DeployOptions): Promise<Deployment> {
  const things = [...new Set(options.things)];
  if (things.length === 0) {
    throw new OutpostError('INVALID_ARGUMENT', 'deploy needs at least one thing', {
      details: { accepted: 'thing names' },
    });
  }
  for (const thing of things) checkName('thing name', thing);
  if (options.jobId !== undefined) checkName('job id', options.jobId);
  const prepared = await prepareArtifact({
    artifact: options.artifact,
    ...(options.jobId === undefined ? {} : { streamId: options.jobId }),
    ...pick(options, ['blockSize', 'keepVersions', 'notes', 'trustedKeys', 'workDir', 'rollout', 'signingKey']),
    layout: options.layout ?? 'files',
  });
  const jobId = prepared.document.artifact.streamId;
  let client: MqttClient | undefined;
  let streams: StreamsServer | undefined;
  let jobs: JobsService | undefined;
  const cleanup = async (): Promise<void> => {
    await jobs?.close();
    await streams?.close();
    if (client !== undefined) await closeBroker(client);
    await rm(prepared.scratch, { recursive: true, force: true });
  };
  try {
    client = await connectBroker({
      url: options.brokerUrl,
      clientId: `outpost-fleet-${jobId}`.slice(0, 128),
      ...pick(options, ['tls', 'username', 'password']),
    });
    const served = new Map<string, number>();
    const onEvent = options.onEvent;
    const total = prepared.document.artifact.size;
    streams = new StreamsServer({
      client,
      ...pick(options, ['testHooks']),
      ...(onEvent === undefined
        ? {}
        : {
            onServed: ({ streamId, thing, fileId, bytes }) => {
              if (streamId !== jobId || fileId === prepared.document.artifact.indexFileId) return;
              const sofar = (served.get(thing) ?? 0) + bytes;
              served.set(thing, sofar);
              onEvent({ type: 'download', jobId, thing, bytes: sofar, total });
            },
          }),
    });
    await streams.addStream({
      streamId: jobId,
      version: STREAM_VERSION,
      description: `${prepared.manifest.name} ${prepared.manifest.version}`,
      files: prepared.streamFiles,
    });
    jobs = new JobsService({ client });
    await jobs.start();
    if (options.onEvent !== undefined) {
      const onEvent = options.onEvent;
      jobs.onEvent((event) => {
        if (event.jobId === jobId) onEvent({ type: 'execution', ...event });
      });
    }
    // Stream served, service listening: devices told about the job from here on can fetch it.
    options.onEvent?.({ type: 'ready', jobId, document: prepared.document, things });
    await jobs.createJob({
      jobId,
      document: prepared.document,
      things,
      ...pick(options, ['inProgressTimeoutMs']),
    });
  } catch (error) {
    await cleanup();
    throw error;
  }
  log.info({ jobId, things, brokerUrl: options.brokerUrl }, 'deployment serving');
  return deployment(jobId, prepared.document, jobs, streams, cleanup);
}

function deployment(
  jobId: string,
  document: JobDocument,
  jobs: JobsService,
  streams: StreamsServer,
  cleanup: () => Promise<void>,
): Deployment {
  const result = (): DeployResult => ({
    jobId,
    things: jobs.executions(jobId).map(({ thing, status, statusDetails }) => ({ thing, status, statusDetails })),
  });
  const allTerminal = (): boolean => jobs.executions(jobId).every((e) => isTerminal(e.status));
  let settled: Promise<DeployResult> | undefined;
  let closing: Promise<DeployResult> | undefined;
  return {
    jobId,
    document,
    jobs,
    streams,
    result,
    settled: () =>
      (settled ??= new Promise<DeployResult>((resolve) => {
        if (allTerminal()) {
          resolve(result());
          return;
        }
        const off = jobs.onEvent(() => {
          if (!allTerminal()) return;
          off();
          resolve(result());
        });
      })),
    close: () =>
      (closing ??= (async () => {
        const final = result();
        await cleanup();
        return final;
      })()),
  };
}

/** The wait ran out: what is IN_PROGRESS times out, what never started is canceled, each saying why. */
async function endPending(deployment: Deployment, timeoutMs: number): Promise<void> {
  const reason = `deployment timed out after ${Math.round(timeoutMs / 1000)} s`;
  for (const { thing, status } of deployment.jobs.executions(deployment.jobId)) {
    if (status === 'IN_PROGRESS') await deployment.jobs.endExecution(deployment.jobId, thing, 'TIMED_OUT', { reason });
    if (status === 'QUEUED') {
      await deployment.jobs.endExecution(deployment.jobId, thing, 'CANCELED', {
        reason: `${reason} before the device started the job`,
      });
    }
  }
}

function pick<T extends object, K extends keyof T>(source: T, keys: readonly K[]): Partial<Pick<T, K>> {
  const out: Partial<Pick<T, K>> = {};
  for (const key of keys) if (source[key] !== undefined) out[key] = source[key];
  return out;
}
