import { epochNow, JOB_STATUSES, type JobStatus } from '../../device-agent/protocol/index.js';
import type { ArtifactRecord, DeploymentRecord, ExecutionRecord, GroupRecord, ThingRecord } from '../store/index.js';
import { formatQuery } from '../registry/query.js';
import type { RolloutView } from './rollout-view.js';

/**
 * The API's JSON. Where IoT Jobs has a name for a field it is used (DescribeJob's jobProcessDetails counters,
 * JobExecution's status, statusDetails, versionNumber, executionNumber, queuedAt/startedAt/lastUpdatedAt in epoch
 * seconds); Outpost's additions sit beside them (artifact, fit, previousVersion, wave).
 */
const COUNTER: Readonly<Record<JobStatus, string>> = Object.freeze({
  QUEUED: 'numberOfQueuedThings',
  IN_PROGRESS: 'numberOfInProgressThings',
  SUCCEEDED: 'numberOfSucceededThings',
  FAILED: 'numberOfFailedThings',
  REJECTED: 'numberOfRejectedThings',
  CANCELED: 'numberOfCanceledThings',
  TIMED_OUT: 'numberOfTimedOutThings',
  REMOVED: 'numberOfRemovedThings',
});

const iso = (ms: number): string | null => (ms > 0 ? new Date(ms).toISOString() : null);

export function thingView(thing: ThingRecord) {
  return {
    thingName: thing.name,
    connected: thing.connected,
    firstSeen: iso(thing.firstSeenMs),
    lastSeen: iso(thing.lastSeenMs),
    target: thing.target,
    agentVersion: thing.agentVersion ?? null,
    onnxruntimeVersion: thing.onnxruntimeVersion ?? null,
    models: thing.models,
    health: thing.health,
    drift: thing.drift,
    shadows: thing.shadows,
    guardrails: thing.guardrails,
    attributes: thing.attributes,
  };
}

export function groupView(group: GroupRecord) {
  return group.kind === 'static'
    ? { groupName: group.name, kind: group.kind, things: group.things, createdAt: iso(group.createdMs) }
    : { groupName: group.name, kind: group.kind, where: formatQuery(group.where), createdAt: iso(group.createdMs) };
}

export function artifactView(artifact: ArtifactRecord) {
  return {
    sha256: artifact.sha256,
    model: artifact.name,
    version: artifact.version,
    target: artifact.target,
    bytes: artifact.bytes,
    blockSize: artifact.blockSize,
    streamId: artifact.streamId,
    files: artifact.files,
    /** The files layout's stream (docs/job-document.md), or null for an artifact stored before it existed. */
    delivery: artifact.delivery ?? null,
    createdAt: iso(artifact.createdMs),
  };
}

export function executionView(e: ExecutionRecord, artifacts: ReadonlyMap<string, ArtifactRecord>) {
  const artifact = e.artifact === undefined ? undefined : artifacts.get(e.artifact);
  return {
    thing: e.thing,
    thingName: e.thing,
    status: e.status,
    statusDetails: e.statusDetails,
    /** What the device reported fetching for this job (statusDetails.bytesFetched), bytes; null before it did. */
    bytesFetched: bytesFetchedOf(e.statusDetails),
    versionNumber: e.versionNumber,
    executionNumber: e.executionNumber,
    queuedAt: epochNow(e.queuedMs),
    startedAt: e.startedMs === undefined ? null : epochNow(e.startedMs),
    lastUpdatedAt: epochNow(e.lastUpdatedMs),
    artifact: e.artifact ?? null,
    artifactTarget: artifact?.target.profile ?? null,
    fit: e.fit ?? null,
    previousVersion: e.previousVersion ?? null,
    wave: e.wave ?? null,
    retry: e.retry,
    released: e.releasedMs !== undefined,
    attempts: e.attempts,
  };
}

function bytesFetchedOf(details: Readonly<Record<string, string>>): number | null {
  const value = Number(details.bytesFetched);
  return details.bytesFetched === undefined || !Number.isSafeInteger(value) || value < 0 ? null : value;
}

/** IoT Jobs' job status for our deployment state. */
/** An aborted IoT job (abortConfig tripped) is CANCELED. */
const JOB_STATUS = Object.freeze({
  ACTIVE: 'IN_PROGRESS',
  COMPLETED: 'COMPLETED',
  CANCELED: 'CANCELED',
  ABORTED: 'CANCELED',
});

export function deploymentView(
  d: DeploymentRecord,
  executions: readonly ExecutionRecord[],
  artifacts: ReadonlyMap<string, ArtifactRecord>,
  continuous = false,
  rollout?: RolloutView,
) {
  const details: Record<string, number> = {};
  for (const status of JOB_STATUSES) details[COUNTER[status]] = executions.filter((e) => e.status === status).length;
  return {
    id: d.id,
    jobId: d.id,
    state: d.state,
    status: JOB_STATUS[d.state],
    /** Targets a dynamic group: stays ACTIVE for things that join later (IoT Jobs' targetSelection CONTINUOUS). */
    continuous,
    model: d.model,
    version: d.version,
    target: d.target,
    strategy: d.strategy,
    options: d.options,
    reason: d.reason ?? null,
    createdAt: iso(d.createdMs),
    lastUpdatedAt: iso(d.updatedMs),
    versionNumber: d.versionNumber,
    artifacts: d.artifacts.map((sha) => {
      const a = artifacts.get(sha);
      return { sha256: sha, target: a?.target ?? null, streamId: a?.streamId ?? null, bytes: a?.bytes ?? null };
    }),
    jobProcessDetails: details,
    rollout: rollout ?? null,
    executions: executions.map((e) => executionView(e, artifacts)),
  };
}

export type DeploymentView = ReturnType<typeof deploymentView>;
export type { RolloutView, WaveView } from './rollout-view.js';
export type ThingView = ReturnType<typeof thingView>;
export type GroupView = ReturnType<typeof groupView>;
export type ArtifactView = ReturnType<typeof artifactView>;
