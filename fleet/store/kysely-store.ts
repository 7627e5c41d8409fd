import type { Kysely } from 'kysely';
import type { JobStatus } from '../../device-agent/protocol/index.js';
import * as deployments from './deployment-queries.js';
import { storeError } from './errors.js';
import { migrate, schemaVersion } from './migrate.js';
import type { Dialect } from './migrations/index.js';
import * as registry from './registry-queries.js';
import * as rollouts from './rollout-queries.js';
import { type StoreRetryPolicy, DEFAULT_STORE_RETRY, withStoreRetry } from './retry.js';
import type { Database } from './schema.js';
import type {
  ArtifactRecord,
  DeploymentRecord,
  DeploymentState,
  ExecutionChange,
  ExecutionRecord,
  FleetEvent,
  FleetStore,
  GroupRecord,
  NewDeployment,
  NewEvent,
  NewExecution,
  RolloutState,
  SeenThings,
  ThingRecord,
  ThingStatusUpdate,
  WaveChange,
  WaveRecord,
} from './types.js';

/**
 * FleetStore over Kysely: the same queries on SQLite and PostgreSQL (sqlite.ts and postgres.ts make the connection).
 * Every call maps driver errors to typed ones and retries the transient ones; each write is one transaction.
 */
export class KyselyStore implements FleetStore {
  constructor(
    private readonly db: Kysely<Database>,
    readonly dialect: Dialect,
    readonly location: string,
    private readonly retry: StoreRetryPolicy = DEFAULT_STORE_RETRY,
  ) {}

  private run<T>(operation: string, fn: (db: Kysely<Database>) => Promise<T>): Promise<T> {
    return withStoreRetry(
      operation,
      async () => {
        try {
          return await fn(this.db);
        } catch (error) {
          throw storeError(error, this.location, operation);
        }
      },
      this.retry,
    );
  }

  async close(): Promise<void> {
    await this.db.destroy();
  }

  /** Brings the schema to `version` (default the latest); refuses a database newer than this code. */
  migrateTo(version?: number): Promise<{ from: number; to: number }> {
    return this.run('migrate', (db) => migrate(db, this.dialect, this.location, version));
  }

  schemaVersion(): Promise<number> {
    return this.run('read schema version', (db) => schemaVersion(db));
  }

  recordStatus(update: ThingStatusUpdate) {
    return this.run('record status', (db) => registry.recordStatus(db, this.dialect, update));
  }
  setAttributes(
    name: string,
    attributes: Readonly<Record<string, string | null>>,
    nowMs: number,
  ): Promise<ThingRecord> {
    return this.run('set attributes', (db) => registry.setAttributes(db, name, attributes, nowMs));
  }
  getThing(name: string): Promise<ThingRecord | undefined> {
    return this.run('read thing', (db) => registry.getThing(db, name));
  }
  listThings(names?: readonly string[]): Promise<ThingRecord[]> {
    return this.run('list things', (db) => registry.listThings(db, names));
  }
  thingsSeenAfter(afterMs: number, limit: number): Promise<SeenThings> {
    return this.run('read things seen', (db) => registry.thingsSeenAfter(db, afterMs, limit));
  }
  createGroup(group: GroupRecord): Promise<GroupRecord> {
    return this.run('create group', (db) => registry.createGroup(db, group));
  }
  getGroup(name: string): Promise<GroupRecord | undefined> {
    return this.run('read group', (db) => registry.getGroup(db, name));
  }
  listGroups(): Promise<GroupRecord[]> {
    return this.run('list groups', (db) => registry.listGroups(db));
  }
  putArtifact(artifact: ArtifactRecord): Promise<ArtifactRecord> {
    return this.run('store artifact', (db) => registry.putArtifact(db, artifact));
  }
  getArtifact(sha256: string): Promise<ArtifactRecord | undefined> {
    return this.run('read artifact', (db) => registry.getArtifact(db, sha256));
  }
  getArtifactByStream(streamId: string): Promise<ArtifactRecord | undefined> {
    return this.run('read artifact', (db) => registry.getArtifactByStream(db, streamId));
  }
  listArtifacts(): Promise<ArtifactRecord[]> {
    return this.run('list artifacts', (db) => registry.listArtifacts(db));
  }

  createDeployment(deployment: NewDeployment, executions: readonly NewExecution[]): Promise<DeploymentRecord> {
    return this.run('create deployment', (db) =>
      deployments.createDeployment(db, this.dialect, deployment, executions),
    );
  }
  getDeployment(id: string): Promise<DeploymentRecord | undefined> {
    return this.run('read deployment', (db) => deployments.getDeployment(db, id));
  }
  listDeployments(filter?: { readonly state?: DeploymentState }): Promise<DeploymentRecord[]> {
    return this.run('list deployments', (db) => deployments.listDeployments(db, filter?.state));
  }
  setDeploymentState(
    id: string,
    expectedVersion: number,
    state: DeploymentState,
    nowMs: number,
    reason?: string,
    rollout?: RolloutState,
  ) {
    return this.run('update deployment', (db) =>
      deployments.setDeploymentState(db, this.dialect, id, expectedVersion, state, nowMs, reason, rollout),
    );
  }
  setRolloutState(id: string, expectedVersion: number, rollout: RolloutState, nowMs: number) {
    return this.run('update rollout', (db) => rollouts.setRolloutState(db, id, expectedVersion, rollout, nowMs));
  }
  listWaves(jobId: string): Promise<WaveRecord[]> {
    return this.run('list waves', (db) => rollouts.listWaves(db, jobId));
  }
  transitionWave(jobId: string, wave: number, expectedVersion: number, change: WaveChange): Promise<WaveRecord> {
    return this.run('update wave', (db) =>
      rollouts.transitionWave(db, this.dialect, jobId, wave, expectedVersion, change),
    );
  }
  releaseExecutions(jobId: string, executionNumbers: readonly number[], nowMs: number): Promise<ExecutionRecord[]> {
    return this.run('release executions', (db) =>
      rollouts.releaseExecutions(db, this.dialect, jobId, executionNumbers, nowMs),
    );
  }
  addRetry(jobId: string, execution: NewExecution & { readonly retry: number }, nowMs: number) {
    return this.run('add retry', (db) => rollouts.addRetry(db, this.dialect, jobId, execution, nowMs));
  }
  releasedSince(jobId: string, sinceMs: number): Promise<number> {
    return this.run('count releases', (db) => rollouts.releasedSince(db, jobId, sinceMs));
  }
  rolloutsToDrive(): Promise<DeploymentRecord[]> {
    return this.run('list rollouts', (db) => rollouts.rolloutsToDrive(db));
  }
  getDocument(jobId: string, artifact: string) {
    return this.run('read job document', (db) => deployments.getDocument(db, jobId, artifact));
  }
  addExecutions(jobId: string, executions: readonly NewExecution[], nowMs: number): Promise<ExecutionRecord[]> {
    return this.run('add executions', (db) => deployments.addExecutions(db, this.dialect, jobId, executions, nowMs));
  }
  listExecutions(jobId: string): Promise<ExecutionRecord[]> {
    return this.run('list executions', (db) => deployments.listExecutions(db, jobId));
  }
  thingExecutions(thing: string, options?: { readonly pending?: boolean }): Promise<ExecutionRecord[]> {
    return this.run('list executions', (db) => deployments.thingExecutions(db, thing, options?.pending === true));
  }
  findExecution(thing: string, jobId: string, executionNumber?: number): Promise<ExecutionRecord | undefined> {
    return this.run('read execution', (db) => deployments.findExecution(db, thing, jobId, executionNumber));
  }
  transitionExecution(executionNumber: number, expectedVersion: number, change: ExecutionChange) {
    return this.run('update execution', (db) =>
      deployments.transitionExecution(db, this.dialect, executionNumber, expectedVersion, change),
    );
  }
  stalePending(beforeMs: number, limit: number): Promise<ExecutionRecord[]> {
    return this.run('list stale executions', (db) => deployments.stalePending(db, beforeMs, limit));
  }
  dueExecutions(nowMs: number, limit: number): Promise<ExecutionRecord[]> {
    return this.run('list due executions', (db) => deployments.dueExecutions(db, nowMs, limit));
  }
  countExecutions(jobId: string): Promise<Partial<Record<JobStatus, number>>> {
    return this.run('count executions', (db) => deployments.countExecutions(db, jobId));
  }
  heartbeat(workerId: string, nowMs: number, info: Readonly<Record<string, unknown>> = {}): Promise<void> {
    return this.run('heartbeat', (db) => registry.heartbeat(db, workerId, nowMs, info));
  }
  liveWorkers(sinceMs: number): Promise<string[]> {
    return this.run('list workers', (db) => registry.liveWorkers(db, sinceMs));
  }
  removeWorker(workerId: string): Promise<void> {
    return this.run('remove worker', (db) => registry.removeWorker(db, workerId));
  }
  appendEvent(event: NewEvent, nowMs: number): Promise<FleetEvent> {
    return this.run('append event', (db) =>
      db.transaction().execute((trx) => deployments.appendEvent(trx, this.dialect, event, nowMs)),
    );
  }
  deploymentEvents(deploymentId: string, after: number, limit: number): Promise<FleetEvent[]> {
    return this.run('read events', (db) => rollouts.deploymentEvents(db, deploymentId, after, limit));
  }
  eventsAfter(id: number, limit: number): Promise<FleetEvent[]> {
    return this.run('read events', (db) => deployments.eventsAfter(db, id, limit));
  }
}
