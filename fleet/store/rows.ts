import type { Selectable } from 'kysely';
import type { JobStatus, StatusDetails } from '../../device-agent/protocol/index.js';
import type {
  ArtifactsTable,
  DeploymentsTable,
  EventsTable,
  ExecutionsTable,
  GroupsTable,
  RolloutWavesTable,
  ThingsTable,
} from './schema.js';
import type {
  ArtifactFit,
  ArtifactRecord,
  DeliveryStreamRecord,
  DeploymentRecord,
  DeploymentState,
  ExecutionRecord,
  FleetEvent,
  GroupClause,
  GroupRecord,
  ThingRecord,
  WaveRecord,
  WaveState,
} from './types.js';

/**
 * Rows to records. JSON columns hold only what this code wrote (records serialised by the store), so they are read
 * back as their types; numbers go through Number() because PostgreSQL's bigint arrives as text where no parser is set.
 */
export function parseJson<T>(text: string | null, fallback: T): T {
  if (text === null || text === '') return fallback;
  return JSON.parse(text) as T;
}

const num = (value: number | string): number => Number(value);
const optNum = (value: number | string | null): number | undefined => (value === null ? undefined : Number(value));

export function toThing(row: Selectable<ThingsTable>): ThingRecord {
  return {
    name: row.name,
    connected: row.connected === 1,
    firstSeenMs: num(row.first_seen_ms),
    lastSeenMs: num(row.last_seen_ms),
    target: {
      ...(row.profile === null ? {} : { profile: row.profile }),
      ...(row.cpu_profile === null ? {} : { cpuProfile: row.cpu_profile }),
      ...(row.arch === null ? {} : { arch: row.arch }),
    },
    ...(row.agent_version === null ? {} : { agentVersion: row.agent_version }),
    ...(row.ort_version === null ? {} : { onnxruntimeVersion: row.ort_version }),
    models: parseJson(row.models_json, []),
    health: parseJson(row.health_json, []),
    // A store opened at a schema before 005-drift (006-serving) has no such column (rolling upgrades, the migration tests).
    drift: 'drift_json' in row ? parseJson(row.drift_json, []) : [],
    shadows: 'shadows_json' in row ? parseJson(row.shadows_json, []) : [],
    guardrails: 'guardrails_json' in row ? parseJson(row.guardrails_json, []) : [],
    attributes: parseJson(row.attributes_json, {}),
  };
}

export function toGroup(row: Selectable<GroupsTable>, members: readonly string[]): GroupRecord {
  return row.kind === 'dynamic'
    ? {
        name: row.name,
        kind: 'dynamic',
        where: parseJson<GroupClause[]>(row.where_json, []),
        createdMs: num(row.created_ms),
      }
    : { name: row.name, kind: 'static', things: [...members].sort(), createdMs: num(row.created_ms) };
}

const EMPTY_DELIVERY: DeliveryStreamRecord = Object.freeze({ streamId: '', files: [], bytes: 0 });

export function toArtifact(row: Selectable<ArtifactsTable>): ArtifactRecord {
  return {
    sha256: row.sha256,
    name: row.name,
    version: row.version,
    target: { profile: row.target_profile, arch: row.target_arch },
    bytes: num(row.bytes),
    blockSize: num(row.block_size),
    streamId: row.stream_id,
    streamVersion: num(row.stream_version),
    files: parseJson(row.files_json, []),
    createdMs: num(row.created_ms),
    ...(row.manifest_sha256 === null ? {} : { manifestSha256: row.manifest_sha256 }),
    // absent, not null, on a schema before migration 7
    ...(typeof row.delivery_json !== 'string'
      ? {}
      : { delivery: parseJson<DeliveryStreamRecord>(row.delivery_json, EMPTY_DELIVERY) }),
  };
}

export function toDeployment(row: Selectable<DeploymentsTable>): DeploymentRecord {
  return {
    id: row.id,
    model: row.model,
    version: row.version,
    state: row.state as DeploymentState,
    target: parseJson(row.target_json, {}),
    strategy: parseJson(row.strategy_json, { type: 'all-at-once' }),
    options: parseJson(row.options_json, {}),
    artifacts: parseJson(row.artifacts_json, []),
    ...(row.reason === null ? {} : { reason: row.reason }),
    createdMs: num(row.created_ms),
    updatedMs: num(row.updated_ms),
    versionNumber: num(row.version_number),
    rollout: parseJson(row.rollout_json, {}),
  };
}

export function toWave(row: Selectable<RolloutWavesTable>): WaveRecord {
  const startedMs = optNum(row.started_ms);
  const endedMs = optNum(row.ended_ms);
  const bakeUntilMs = optNum(row.bake_until_ms);
  return {
    jobId: row.deployment_id,
    wave: num(row.wave),
    size: num(row.size),
    bakeMs: num(row.bake_ms),
    state: row.state as WaveState,
    versionNumber: num(row.version_number),
    ...(startedMs === undefined ? {} : { startedMs }),
    ...(endedMs === undefined ? {} : { endedMs }),
    ...(bakeUntilMs === undefined ? {} : { bakeUntilMs }),
    figures: parseJson(row.figures_json, {}),
  };
}

export function toExecution(row: Selectable<ExecutionsTable>): ExecutionRecord {
  const startedMs = optNum(row.started_ms);
  const wave = optNum(row.wave);
  const deadlineMs = optNum(row.deadline_ms);
  const stepDeadlineMs = optNum(row.step_deadline_ms);
  const releasedMs = optNum(row.released_ms);
  return {
    executionNumber: num(row.execution_number),
    jobId: row.job_id,
    thing: row.thing,
    ...(row.artifact === null ? {} : { artifact: row.artifact }),
    ...(row.fit === null ? {} : { fit: row.fit as ArtifactFit }),
    status: row.status as JobStatus,
    statusDetails: parseJson<StatusDetails>(row.status_details_json, {}),
    versionNumber: num(row.version_number),
    queuedMs: num(row.queued_ms),
    ...(startedMs === undefined ? {} : { startedMs }),
    lastUpdatedMs: num(row.last_updated_ms),
    attempts: num(row.attempts),
    ...(wave === undefined ? {} : { wave }),
    ...(row.previous_version === null ? {} : { previousVersion: row.previous_version }),
    ...(deadlineMs === undefined ? {} : { deadlineMs }),
    ...(stepDeadlineMs === undefined ? {} : { stepDeadlineMs }),
    retry: num(row.retry),
    ...(releasedMs === undefined ? {} : { releasedMs }),
  };
}

export function toEvent(row: Selectable<EventsTable>): FleetEvent {
  return {
    id: num(row.id),
    atMs: num(row.at_ms),
    type: row.type,
    ...(row.deployment_id === null ? {} : { deploymentId: row.deployment_id }),
    ...(row.thing === null ? {} : { thing: row.thing }),
    data: parseJson(row.data_json, {}),
  };
}
