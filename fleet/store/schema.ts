import type { Generated } from 'kysely';

/**
 * The tables, as the typed query layer (Kysely) sees them, after the last migration (migrations/). Times are
 * milliseconds since the epoch (bigint in PostgreSQL, read back as numbers); booleans are 0/1; structured values
 * are JSON text, so both engines store exactly the same bytes.
 */
export interface SchemaVersionTable {
  version: number;
  name: string;
  applied_ms: number;
}

export interface ThingsTable {
  name: string;
  connected: number;
  first_seen_ms: number;
  last_seen_ms: number;
  profile: string | null;
  cpu_profile: string | null;
  arch: string | null;
  agent_version: string | null;
  ort_version: string | null;
  models_json: string;
  health_json: string;
  drift_json: string;
  shadows_json: string;
  guardrails_json: string;
  attributes_json: string;
  updated_ms: number;
}

export interface GroupsTable {
  name: string;
  kind: 'static' | 'dynamic';
  where_json: string | null;
  created_ms: number;
}

export interface GroupMembersTable {
  group_name: string;
  thing_name: string;
}

export interface ArtifactsTable {
  sha256: string;
  name: string;
  version: string;
  target_profile: string;
  target_arch: string;
  bytes: number;
  block_size: number;
  stream_id: string;
  stream_version: number;
  files_json: string;
  created_ms: number;
  /** sha256 of manifest.json (runtime/artifact manifestDigest); NULL for artifacts stored before migration 4. */
  manifest_sha256: string | null;
  /** The files-layout stream (DeliveryStreamRecord as JSON) and its id; NULL for artifacts stored before migration 7. */
  delivery_json: string | null;
  delivery_stream_id: string | null;
}

export interface DeploymentsTable {
  id: string;
  model: string;
  version: string;
  state: string;
  target_json: string;
  strategy_json: string;
  options_json: string;
  artifacts_json: string;
  reason: string | null;
  created_ms: number;
  updated_ms: number;
  version_number: number;
  /** The rollout's state: abort figures, rollback deployments (fleet/rollouts/). */
  rollout_json: Generated<string>;
}

export interface RolloutWavesTable {
  deployment_id: string;
  wave: number;
  size: number;
  bake_ms: number;
  state: string;
  version_number: number;
  started_ms: number | null;
  ended_ms: number | null;
  bake_until_ms: number | null;
  figures_json: Generated<string>;
}

export interface DeploymentDocumentsTable {
  deployment_id: string;
  artifact_sha256: string;
  document_json: string;
}

export interface ExecutionsTable {
  execution_number: Generated<number>;
  job_id: string;
  thing: string;
  /** 0 for the first execution of a job on a thing; retries (rollouts) add new rows with 1, 2, … */
  retry: number;
  artifact: string | null;
  fit: string | null;
  status: string;
  status_details_json: string;
  version_number: number;
  queued_ms: number;
  started_ms: number | null;
  last_updated_ms: number;
  attempts: number;
  wave: number | null;
  previous_version: string | null;
  deadline_ms: number | null;
  step_deadline_ms: number | null;
  /** When its wave released it to its thing; NULL: not yet (the thing is never told of it). */
  released_ms: number | null;
}

export interface EventsTable {
  id: Generated<number>;
  at_ms: number;
  type: string;
  deployment_id: string | null;
  thing: string | null;
  data_json: string;
}

export interface WorkersTable {
  id: string;
  started_ms: number;
  heartbeat_ms: number;
  info_json: string;
}

export interface Database {
  schema_version: SchemaVersionTable;
  things: ThingsTable;
  groups: GroupsTable;
  group_members: GroupMembersTable;
  artifacts: ArtifactsTable;
  deployments: DeploymentsTable;
  deployment_documents: DeploymentDocumentsTable;
  executions: ExecutionsTable;
  events: EventsTable;
  workers: WorkersTable;
  rollout_waves: RolloutWavesTable;
}
