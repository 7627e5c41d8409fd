import type { JobStatus, StatusDetails } from '../../device-agent/protocol/index.js';
import type { ThingDrift, ThingGuardrail, ThingHealth, ThingModel, ThingShadow, ThingTarget } from './thing-reports.js';

export type { ThingDrift, ThingGuardrail, ThingHealth, ThingModel, ThingShadow, ThingTarget } from './thing-reports.js';

/**
 * The fleet's persistent state, as every other part of fleet/ sees it: one interface (FleetStore) with two
 * implementations over one typed query layer (kysely-store.ts on SQLite or PostgreSQL). Times are milliseconds since
 * the epoch; the wire forms (seconds, IoT Jobs field names) are made at the edges.
 */

export interface ThingRecord {
  readonly name: string;
  readonly connected: boolean;
  readonly firstSeenMs: number;
  /** Last status message of any kind (the last will included); 0 for a thing registered but never heard from. */
  readonly lastSeenMs: number;
  readonly target: ThingTarget;
  readonly agentVersion?: string;
  readonly onnxruntimeVersion?: string;
  /** Installed and active models as the agent last reported them. */
  readonly models: readonly ThingModel[];
  readonly health: readonly ThingHealth[];
  readonly drift: readonly ThingDrift[];
  /** Shadow comparisons running on the thing, as it last reported them. */
  readonly shadows: readonly ThingShadow[];
  /** Versions under the thing's guardrail watch (baking after a deployment), as it last reported them. */
  readonly guardrails: readonly ThingGuardrail[];
  /** Operator attributes (`fleet thing <name> --attr site=plant-3`), matched by `attr.<key>` in dynamic groups. */
  readonly attributes: Readonly<Record<string, string>>;
}

/** Things heard from after a time (names, oldest report first), and the newest last-seen time of the whole registry. */
export interface SeenThings {
  readonly things: readonly string[];
  readonly latestMs: number;
}

/** One status message, reduced to what the registry stores. `connected: false` alone is the last will. */
export interface ThingStatusUpdate {
  readonly name: string;
  readonly connected: boolean;
  readonly atMs: number;
  readonly target?: ThingTarget;
  readonly agentVersion?: string;
  readonly onnxruntimeVersion?: string;
  readonly models?: readonly ThingModel[];
  readonly health?: readonly ThingHealth[];
  readonly drift?: readonly ThingDrift[];
  readonly shadows?: readonly ThingShadow[];
  readonly guardrails?: readonly ThingGuardrail[];
}

/** A dynamic group's condition: every clause must hold (registry/query.ts parses and matches them). */
export interface GroupClause {
  /** arch | cpu | target | attr.<name> */
  readonly key: string;
  readonly value: string;
}

export type GroupRecord =
  | { readonly name: string; readonly kind: 'static'; readonly things: readonly string[]; readonly createdMs: number }
  | {
      readonly name: string;
      readonly kind: 'dynamic';
      readonly where: readonly GroupClause[];
      readonly createdMs: number;
    };

/** One file of an artifact's stream: the bytes live in the blob store under `sha256`. */
export interface StreamFileRecord {
  readonly fileId: number;
  readonly sha256: string;
  readonly bytes: number;
  /**
   * Archive layout: index (the block-hash index), archive (the .tar.gz). Files layout (docs/job-document.md,
   * "Stream layouts"): delivery (the delivery index, file 0), file (one artifact file, at `path`).
   */
  readonly role: 'index' | 'archive' | 'delivery' | 'file';
  /** The artifact path of a `file`. */
  readonly path?: string;
}

/** The files layout's stream of an artifact: the delivery index and one stream file per artifact file. */
export interface DeliveryStreamRecord {
  readonly streamId: string;
  readonly files: readonly StreamFileRecord[];
  /** Bytes of every artifact file (the job document's `artifact.size`). */
  readonly bytes: number;
}

/** A verified artifact, stored content-addressed: its id is the sha256 of its archive. */
export interface ArtifactRecord {
  readonly sha256: string;
  readonly name: string;
  readonly version: string;
  /** The manifest's target: profile key (or "any") and arch (x86_64 | arm64 | any). */
  readonly target: { readonly profile: string; readonly arch: string };
  readonly bytes: number;
  readonly blockSize: number;
  /** The MQTT-based file delivery stream serving it, to any number of jobs. */
  readonly streamId: string;
  readonly streamVersion: number;
  readonly files: readonly StreamFileRecord[];
  readonly createdMs: number;
  /** sha256 of its manifest.json: an agent that has this version installed with it need not fetch it again. */
  readonly manifestSha256?: string;
  /** Its files-layout stream; absent for artifacts stored before migration 7 (or of more than 255 files). */
  readonly delivery?: DeliveryStreamRecord;
}

/** Deployment states (deployments/states.ts holds the transition table). */
export const DEPLOYMENT_STATES = Object.freeze(['ACTIVE', 'COMPLETED', 'CANCELED', 'ABORTED'] as const);
export type DeploymentState = (typeof DEPLOYMENT_STATES)[number];

/**
 * How a deployment reaches its things. Today only `all-at-once`; rollouts (waves, rates, abort criteria) extend this
 * object, and it is stored as given, so a worker that restarts reads back exactly what the operator asked for.
 */
export interface DeploymentStrategy {
  readonly type: string;
  readonly [setting: string]: unknown;
}

export interface DeploymentTargetSpec {
  readonly group?: string;
  readonly things?: readonly string[];
}

/** What goes into every execution's job document besides the artifact (docs/job-document.md). */
export interface DeploymentDocumentOptions {
  readonly rollout?: {
    readonly mode: 'replace' | 'canary' | 'shadow';
    readonly percent?: number;
    readonly bakeSeconds?: number;
  };
  readonly keepVersions?: number;
  readonly notes?: string;
  /**
   * The stream layout the devices get (docs/job-document.md, "Stream layouts"). Absent: `files` where the artifact
   * has that stream, else `archive`.
   */
  readonly layout?: 'archive' | 'files';
  /** CreateJob timeoutConfig.inProgressTimeoutInMinutes, in milliseconds. */
  readonly inProgressTimeoutMs?: number;
}

export interface DeploymentRecord {
  readonly id: string;
  readonly model: string;
  readonly version: string;
  readonly state: DeploymentState;
  readonly target: DeploymentTargetSpec;
  readonly strategy: DeploymentStrategy;
  readonly options: DeploymentDocumentOptions;
  /** Artifact sha256s, in the order the operator gave them (the tie-break among equal fits). */
  readonly artifacts: readonly string[];
  readonly reason?: string;
  readonly createdMs: number;
  readonly updatedMs: number;
  readonly versionNumber: number;
  /** The rollout controller's state: what tripped an abort, rollbacks created (fleet/rollouts/). */
  readonly rollout: RolloutState;
}

export interface RolloutState {
  /** The figures that tripped the abort (or the operator's cancel --rollback). */
  readonly abort?: Readonly<Record<string, unknown>>;
  /** Roll the switched devices back (abort, cancel --rollback). */
  readonly rollback?: boolean;
  /** Rollback deployments created, by the version they return to. */
  readonly rollbacks?: Readonly<Record<string, string>>;
  /** Every switched device has its rollback deployment (nothing of the deployment is still pending). */
  readonly rollbackDone?: boolean;
}

/** Wave states (fleet/rollouts/waves.ts holds the transition table). */
export const WAVE_STATES = Object.freeze(['PENDING', 'RELEASING', 'RUNNING', 'BAKING', 'DONE', 'CANCELED'] as const);
export type WaveState = (typeof WAVE_STATES)[number];

export interface WaveRecord {
  readonly jobId: string;
  readonly wave: number;
  readonly size: number;
  /** How long it bakes once every execution in it ended healthy; milliseconds. */
  readonly bakeMs: number;
  readonly state: WaveState;
  readonly versionNumber: number;
  readonly startedMs?: number;
  readonly endedMs?: number;
  /** Absolute: a restarted worker bakes only what is left. */
  readonly bakeUntilMs?: number;
  readonly figures: Readonly<Record<string, unknown>>;
}

export interface NewWave {
  readonly size: number;
  readonly bakeMs: number;
}

/** A conditional change to one wave: applied only if it is still at `expectedVersion`. */
export interface WaveChange {
  readonly state: WaveState;
  readonly nowMs: number;
  readonly startedMs?: number;
  readonly endedMs?: number;
  readonly bakeUntilMs?: number;
  readonly figures?: Readonly<Record<string, unknown>>;
  readonly event?: NewEvent;
}

/** How an artifact was chosen for a thing (deployments/fit.ts). */
export type ArtifactFit = 'exact' | 'cpu' | 'family' | 'any' | 'only';

export interface ExecutionRecord {
  /** Unique across the fleet; also IoT Jobs' executionNumber. */
  readonly executionNumber: number;
  /** The deployment's id: IoT Jobs' jobId. */
  readonly jobId: string;
  readonly thing: string;
  /** The artifact this thing gets; undefined until its target is known (several artifacts, thing not yet heard from). */
  readonly artifact?: string;
  readonly fit?: ArtifactFit;
  readonly status: JobStatus;
  readonly statusDetails: StatusDetails;
  readonly versionNumber: number;
  readonly queuedMs: number;
  readonly startedMs?: number;
  readonly lastUpdatedMs: number;
  /** StartNext/Update calls that moved it (a resumed device counts again; the fleet never double-applies one). */
  readonly attempts: number;
  /** Rollout wave (issue 15); undefined for all-at-once. */
  readonly wave?: number;
  /** The version of the model the device ran before this execution switched it (its rollback target). */
  readonly previousVersion?: string;
  /** When IN_PROGRESS ends as TIMED_OUT: the earlier of the job's in-progress timeout and the step timeout. */
  readonly deadlineMs?: number;
  readonly stepDeadlineMs?: number;
  /** 0 for the first execution of a job on a thing; each retry (jobExecutionsRetryConfig) is a new row, 1, 2, … */
  readonly retry: number;
  /** When its wave released it; undefined: not yet, and its thing is never told of it. */
  readonly releasedMs?: number;
}

export interface NewExecution {
  readonly thing: string;
  readonly artifact?: string;
  readonly fit?: ArtifactFit;
  /** QUEUED, or REJECTED when no artifact fits the thing's reported target (statusDetails say why). */
  readonly status: 'QUEUED' | 'REJECTED';
  readonly statusDetails?: StatusDetails;
  readonly wave?: number;
  /** Default true; false: held until its wave is released. */
  readonly released?: boolean;
  /** Default 0. */
  readonly retry?: number;
}

/** A conditional change to one execution: applied only if it is still at `expectedVersion`. */
export interface ExecutionChange {
  readonly status: JobStatus;
  /** Merged over the current details by the caller (the store writes what it is given). */
  readonly statusDetails: StatusDetails;
  readonly nowMs: number;
  readonly startedMs?: number;
  readonly artifact?: string;
  readonly fit?: ArtifactFit;
  readonly previousVersion?: string;
  /** null clears. */
  readonly deadlineMs?: number | null;
  readonly stepDeadlineMs?: number | null;
  readonly countAttempt?: boolean;
  /** Appended to the event log in the same transaction. */
  readonly event?: NewEvent;
}

export interface NewEvent {
  readonly type: string;
  readonly deploymentId?: string;
  readonly thing?: string;
  readonly data?: Readonly<Record<string, unknown>>;
}

/** The append-only event log: ids only ever grow, and an id is visible only after every smaller one is. */
export interface FleetEvent extends NewEvent {
  readonly id: number;
  readonly atMs: number;
}

export interface NewDeployment {
  readonly id: string;
  readonly model: string;
  readonly version: string;
  readonly target: DeploymentTargetSpec;
  readonly strategy: DeploymentStrategy;
  readonly options: DeploymentDocumentOptions;
  readonly artifacts: readonly string[];
  /** Job document per artifact sha256, fixed at creation. */
  readonly documents: Readonly<Record<string, Readonly<Record<string, unknown>>>>;
  readonly nowMs: number;
  /** Rollout waves, in order (none: all-at-once, nothing held). */
  readonly waves?: readonly NewWave[];
}

export interface FleetStore {
  readonly dialect: 'sqlite' | 'postgres';
  /** Where it is, for logs (passwords redacted). */
  readonly location: string;
  close(): Promise<void>;

  // Registry
  recordStatus(update: ThingStatusUpdate): Promise<{ thing: ThingRecord; created: boolean; cameOnline: boolean }>;
  /** Creates the thing if absent, then sets (value) or removes (null) attributes. */
  setAttributes(name: string, attributes: Readonly<Record<string, string | null>>, nowMs: number): Promise<ThingRecord>;
  getThing(name: string): Promise<ThingRecord | undefined>;
  listThings(names?: readonly string[]): Promise<ThingRecord[]>;
  /** Things whose last status message came after `afterMs` (at most `limit`, oldest first), and the newest of all. */
  thingsSeenAfter(afterMs: number, limit: number): Promise<SeenThings>;
  createGroup(group: GroupRecord): Promise<GroupRecord>;
  getGroup(name: string): Promise<GroupRecord | undefined>;
  listGroups(): Promise<GroupRecord[]>;

  // Artifacts
  /** Idempotent: the same sha256 twice is one record. */
  putArtifact(artifact: ArtifactRecord): Promise<ArtifactRecord>;
  getArtifact(sha256: string): Promise<ArtifactRecord | undefined>;
  getArtifactByStream(streamId: string): Promise<ArtifactRecord | undefined>;
  listArtifacts(): Promise<ArtifactRecord[]>;

  // Deployments and executions
  /** The deployment, its documents, its executions and a `deployment.created` event, in one transaction. */
  createDeployment(deployment: NewDeployment, executions: readonly NewExecution[]): Promise<DeploymentRecord>;
  getDeployment(id: string): Promise<DeploymentRecord | undefined>;
  listDeployments(filter?: { readonly state?: DeploymentState }): Promise<DeploymentRecord[]>;
  /** Conditional on `expectedVersion`; STORE_CONFLICT when another writer got there first. */
  setDeploymentState(
    id: string,
    expectedVersion: number,
    state: DeploymentState,
    nowMs: number,
    reason?: string,
    rollout?: RolloutState,
  ): Promise<DeploymentRecord>;
  /** The rollout state alone, conditional on `expectedVersion` like a state change. */
  setRolloutState(id: string, expectedVersion: number, rollout: RolloutState, nowMs: number): Promise<DeploymentRecord>;
  listWaves(jobId: string): Promise<WaveRecord[]>;
  /** Conditional on the wave's version; STORE_CONFLICT when another worker moved it first. */
  transitionWave(jobId: string, wave: number, expectedVersion: number, change: WaveChange): Promise<WaveRecord>;
  /** Marks these executions released (those not released yet: the rest are left alone), with one event. */
  releaseExecutions(jobId: string, executionNumbers: readonly number[], nowMs: number): Promise<ExecutionRecord[]>;
  /** A retry of a thing's execution (a new row, `retry` one higher, released); undefined when it exists already. */
  addRetry(
    jobId: string,
    execution: NewExecution & { readonly retry: number },
    nowMs: number,
  ): Promise<ExecutionRecord | undefined>;
  /** Executions of `jobId` released at or after `sinceMs` (rate controls). */
  releasedSince(jobId: string, sinceMs: number): Promise<number>;
  /** The job document of one artifact in one deployment. */
  getDocument(jobId: string, artifact: string): Promise<Readonly<Record<string, unknown>> | undefined>;
  /** Executions for things that joined later (dynamic groups): an existing (deployment, thing) is left alone. */
  addExecutions(jobId: string, executions: readonly NewExecution[], nowMs: number): Promise<ExecutionRecord[]>;
  listExecutions(jobId: string): Promise<ExecutionRecord[]>;
  /** A thing's executions, oldest first; `pending` keeps QUEUED and IN_PROGRESS only. */
  thingExecutions(thing: string, options?: { readonly pending?: boolean }): Promise<ExecutionRecord[]>;
  /** The latest execution of `jobId` on `thing`, or the one with that execution number. */
  findExecution(thing: string, jobId: string, executionNumber?: number): Promise<ExecutionRecord | undefined>;
  /**
   * `UPDATE … WHERE execution_number = ? AND version_number = ?`: the version goes up by one. Zero rows is
   * STORE_CONFLICT (details.current holds the execution as it now is), never a silent success.
   */
  transitionExecution(
    executionNumber: number,
    expectedVersion: number,
    change: ExecutionChange,
  ): Promise<ExecutionRecord>;
  /** Deployments that are ACTIVE with waves not all DONE, or ABORTED with rollbacks to make (the controller's work). */
  rolloutsToDrive(): Promise<DeploymentRecord[]>;
  /** QUEUED executions with a chosen artifact, unchanged since before `beforeMs` (their thing may need a nudge). */
  stalePending(beforeMs: number, limit: number): Promise<ExecutionRecord[]>;
  /** IN_PROGRESS executions whose deadline has passed. */
  dueExecutions(nowMs: number, limit: number): Promise<ExecutionRecord[]>;
  /** Per deployment, executions by status (for completion checks and status tables). */
  countExecutions(jobId: string): Promise<Partial<Record<JobStatus, number>>>;

  // Workers
  /** Creates or renews this worker's row. */
  heartbeat(workerId: string, nowMs: number, info?: Readonly<Record<string, unknown>>): Promise<void>;
  /** Workers whose last heartbeat is at or after `sinceMs`, by id. */
  liveWorkers(sinceMs: number): Promise<string[]>;
  removeWorker(workerId: string): Promise<void>;

  // Events
  appendEvent(event: NewEvent, nowMs: number): Promise<FleetEvent>;
  eventsAfter(id: number, limit: number): Promise<FleetEvent[]>;
  /** One deployment's events after id `after`, oldest first (`fleet events <deployment>`). */
  deploymentEvents(deploymentId: string, after: number, limit: number): Promise<FleetEvent[]>;
}
