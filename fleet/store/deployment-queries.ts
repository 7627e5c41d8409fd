import { type Insertable, type Kysely, sql } from 'kysely';
import type { JobStatus } from '../../device-agent/protocol/index.js';
import { OutpostError } from '../../runtime/errors.js';
import type { Dialect } from './migrations/index.js';
import { toDeployment, toEvent, toExecution } from './rows.js';
import type { Database, ExecutionsTable } from './schema.js';
import type {
  DeploymentRecord,
  DeploymentState,
  ExecutionChange,
  RolloutState,
  ExecutionRecord,
  FleetEvent,
  NewDeployment,
  NewEvent,
  NewExecution,
} from './types.js';

/** Deployments, executions and the event log (kysely-store.ts wraps them in error mapping and retries). */
type Db = Kysely<Database>;

/** Rows per multi-row INSERT: well under SQLite's 32,766 and PostgreSQL's 65,535 bound parameters. */
const INSERT_CHUNK = 500;
/** PostgreSQL advisory lock taken by every transaction that appends an event, so ids commit in id order. */
const EVENTS_LOCK = 0x6576656e7473;
const PENDING: readonly JobStatus[] = ['QUEUED', 'IN_PROGRESS'];

/**
 * Appends to the event log inside the caller's transaction. In PostgreSQL a sequence hands out ids before commit, so
 * two transactions could commit 8 before 7 and a reader resuming "after 7" would miss 7; the transaction-scoped
 * advisory lock makes appends commit in id order (SQLite has one writer at a time anyway).
 */
export async function appendEvent(db: Db, dialect: Dialect, event: NewEvent, nowMs: number): Promise<FleetEvent> {
  if (dialect === 'postgres') await sql`select pg_advisory_xact_lock(${EVENTS_LOCK})`.execute(db);
  const row = await db
    .insertInto('events')
    .values({
      at_ms: nowMs,
      type: event.type,
      deployment_id: event.deploymentId ?? null,
      thing: event.thing ?? null,
      data_json: JSON.stringify(event.data ?? {}),
    })
    .returningAll()
    .executeTakeFirstOrThrow();
  return toEvent(row);
}

export async function eventsAfter(db: Db, id: number, limit: number): Promise<FleetEvent[]> {
  const rows = await db.selectFrom('events').selectAll().where('id', '>', id).orderBy('id').limit(limit).execute();
  return rows.map(toEvent);
}

function executionRow(jobId: string, e: NewExecution, nowMs: number): Insertable<ExecutionsTable> {
  return {
    job_id: jobId,
    thing: e.thing,
    retry: e.retry ?? 0,
    artifact: e.artifact ?? null,
    fit: e.fit ?? null,
    status: e.status,
    status_details_json: JSON.stringify(e.statusDetails ?? {}),
    version_number: 1,
    queued_ms: nowMs,
    started_ms: null,
    last_updated_ms: nowMs,
    attempts: 0,
    wave: e.wave ?? null,
    previous_version: null,
    deadline_ms: null,
    step_deadline_ms: null,
    released_ms: e.released === false ? null : nowMs,
  };
}

export async function createDeployment(
  db: Db,
  dialect: Dialect,
  d: NewDeployment,
  executions: readonly NewExecution[],
): Promise<DeploymentRecord> {
  return db.transaction().execute(async (trx) => {
    const existing = await trx.selectFrom('deployments').select('id').where('id', '=', d.id).executeTakeFirst();
    if (existing !== undefined) {
      throw new OutpostError('ALREADY_EXISTS', `deployment ${d.id} already exists`, { details: { id: d.id } });
    }
    await trx
      .insertInto('deployments')
      .values({
        id: d.id,
        model: d.model,
        version: d.version,
        state: 'ACTIVE',
        target_json: JSON.stringify(d.target),
        strategy_json: JSON.stringify(d.strategy),
        options_json: JSON.stringify(d.options),
        artifacts_json: JSON.stringify(d.artifacts),
        reason: null,
        created_ms: d.nowMs,
        updated_ms: d.nowMs,
        version_number: 1,
      })
      .execute();
    await trx
      .insertInto('deployment_documents')
      .values(
        Object.entries(d.documents).map(([sha256, document]) => ({
          deployment_id: d.id,
          artifact_sha256: sha256,
          document_json: JSON.stringify(document),
        })),
      )
      .execute();
    for (let i = 0; i < executions.length; i += INSERT_CHUNK) {
      const chunk = executions.slice(i, i + INSERT_CHUNK).map((e) => executionRow(d.id, e, d.nowMs));
      await trx.insertInto('executions').values(chunk).execute();
    }
    if (d.waves !== undefined && d.waves.length > 0) {
      await trx
        .insertInto('rollout_waves')
        .values(
          d.waves.map((w, wave) => ({
            deployment_id: d.id,
            wave,
            size: w.size,
            bake_ms: w.bakeMs,
            state: 'PENDING',
            version_number: 1,
            started_ms: null,
            ended_ms: null,
            bake_until_ms: null,
          })),
        )
        .execute();
    }
    await appendEvent(
      trx,
      dialect,
      {
        type: 'deployment.created',
        deploymentId: d.id,
        data: {
          model: d.model,
          version: d.version,
          things: executions.length,
          artifacts: d.artifacts,
          strategy: d.strategy,
          waves: (d.waves ?? []).map((w) => w.size),
        },
      },
      d.nowMs,
    );
    const created = await getDeployment(trx, d.id);
    if (created === undefined) throw new OutpostError('INTERNAL', `deployment ${d.id} vanished while created`);
    return created;
  });
}

export async function getDeployment(db: Db, id: string): Promise<DeploymentRecord | undefined> {
  const row = await db.selectFrom('deployments').selectAll().where('id', '=', id).executeTakeFirst();
  return row === undefined ? undefined : toDeployment(row);
}

export async function listDeployments(db: Db, state?: DeploymentState): Promise<DeploymentRecord[]> {
  let query = db.selectFrom('deployments').selectAll().orderBy('created_ms', 'desc').orderBy('id');
  if (state !== undefined) query = query.where('state', '=', state);
  return (await query.execute()).map(toDeployment);
}

export async function setDeploymentState(
  db: Db,
  dialect: Dialect,
  id: string,
  expectedVersion: number,
  state: DeploymentState,
  nowMs: number,
  reason?: string,
  rollout?: RolloutState,
): Promise<DeploymentRecord> {
  return db.transaction().execute(async (trx) => {
    const row = await trx
      .updateTable('deployments')
      .set({
        state,
        updated_ms: nowMs,
        version_number: expectedVersion + 1,
        reason: reason ?? null,
        ...(rollout === undefined ? {} : { rollout_json: JSON.stringify(rollout) }),
      })
      .where('id', '=', id)
      .where('version_number', '=', expectedVersion)
      .returningAll()
      .executeTakeFirst();
    if (row === undefined) {
      const current = await getDeployment(trx, id);
      if (current === undefined) throw notFound(id);
      throw new OutpostError(
        'STORE_CONFLICT',
        `deployment ${id} is at version ${current.versionNumber}, not ${expectedVersion}`,
        {
          details: { id, expectedVersion, current },
        },
      );
    }
    await appendEvent(
      trx,
      dialect,
      {
        type: `deployment.${state.toLowerCase()}`,
        deploymentId: id,
        data: {
          ...(reason === undefined ? {} : { reason }),
          ...(rollout?.abort === undefined ? {} : { abort: rollout.abort }),
        },
      },
      nowMs,
    );
    return toDeployment(row);
  });
}

export function notFound(id: string): OutpostError {
  return new OutpostError('DEPLOYMENT_NOT_FOUND', `no deployment ${id}`, { details: { id } });
}

export async function getDocument(
  db: Db,
  jobId: string,
  artifact: string,
): Promise<Record<string, unknown> | undefined> {
  const row = await db
    .selectFrom('deployment_documents')
    .select('document_json')
    .where('deployment_id', '=', jobId)
    .where('artifact_sha256', '=', artifact)
    .executeTakeFirst();
  return row === undefined ? undefined : (JSON.parse(row.document_json) as Record<string, unknown>);
}

export async function addExecutions(
  db: Db,
  dialect: Dialect,
  jobId: string,
  executions: readonly NewExecution[],
  nowMs: number,
): Promise<ExecutionRecord[]> {
  if (executions.length === 0) return [];
  return db.transaction().execute(async (trx) => {
    const added: ExecutionRecord[] = [];
    for (const execution of executions) {
      const row = await trx
        .insertInto('executions')
        .values(executionRow(jobId, execution, nowMs))
        .onConflict((oc) => oc.columns(['job_id', 'thing', 'retry']).doNothing())
        .returningAll()
        .executeTakeFirst();
      if (row !== undefined) added.push(toExecution(row));
    }
    if (added.length > 0) {
      await appendEvent(
        trx,
        dialect,
        { type: 'deployment.joined', deploymentId: jobId, data: { things: added.map((e) => e.thing) } },
        nowMs,
      );
    }
    return added;
  });
}

export async function listExecutions(db: Db, jobId: string): Promise<ExecutionRecord[]> {
  const rows = await db
    .selectFrom('executions')
    .selectAll()
    .where('job_id', '=', jobId)
    .orderBy('thing')
    .orderBy('execution_number')
    .execute();
  return rows.map(toExecution);
}

export async function thingExecutions(db: Db, thing: string, pending: boolean): Promise<ExecutionRecord[]> {
  let query = db.selectFrom('executions').selectAll().where('thing', '=', thing).orderBy('execution_number');
  // A held execution (its wave not released yet) is not the thing's to see.
  if (pending) query = query.where('status', 'in', [...PENDING]).where('released_ms', 'is not', null);
  return (await query.execute()).map(toExecution);
}

export async function findExecution(
  db: Db,
  thing: string,
  jobId: string,
  executionNumber?: number,
): Promise<ExecutionRecord | undefined> {
  let query = db
    .selectFrom('executions')
    .selectAll()
    .where('thing', '=', thing)
    .where('job_id', '=', jobId)
    .orderBy('execution_number', 'desc');
  if (executionNumber !== undefined) query = query.where('execution_number', '=', executionNumber);
  const row = await query.executeTakeFirst();
  return row === undefined ? undefined : toExecution(row);
}

export async function transitionExecution(
  db: Db,
  dialect: Dialect,
  executionNumber: number,
  expectedVersion: number,
  change: ExecutionChange,
): Promise<ExecutionRecord> {
  return db.transaction().execute(async (trx) => {
    const row = await trx
      .updateTable('executions')
      .set((eb) => ({
        status: change.status,
        status_details_json: JSON.stringify(change.statusDetails),
        version_number: expectedVersion + 1,
        last_updated_ms: change.nowMs,
        ...(change.startedMs === undefined ? {} : { started_ms: change.startedMs }),
        ...(change.artifact === undefined ? {} : { artifact: change.artifact }),
        ...(change.fit === undefined ? {} : { fit: change.fit }),
        ...(change.previousVersion === undefined ? {} : { previous_version: change.previousVersion }),
        ...(change.deadlineMs === undefined ? {} : { deadline_ms: change.deadlineMs }),
        ...(change.stepDeadlineMs === undefined ? {} : { step_deadline_ms: change.stepDeadlineMs }),
        ...(change.countAttempt === true ? { attempts: eb('attempts', '+', 1) } : {}),
      }))
      .where('execution_number', '=', executionNumber)
      .where('version_number', '=', expectedVersion)
      .returningAll()
      .executeTakeFirst();
    if (row === undefined) {
      const current = await trx
        .selectFrom('executions')
        .selectAll()
        .where('execution_number', '=', executionNumber)
        .executeTakeFirst();
      if (current === undefined) {
        throw new OutpostError('INTERNAL', `execution ${executionNumber} does not exist`, {
          details: { executionNumber },
        });
      }
      const now = toExecution(current);
      throw new OutpostError(
        'STORE_CONFLICT',
        `execution ${executionNumber} is at version ${now.versionNumber}, not ${expectedVersion}`,
        { details: { executionNumber, expectedVersion, current: now } },
      );
    }
    if (change.event !== undefined) await appendEvent(trx, dialect, change.event, change.nowMs);
    return toExecution(row);
  });
}

export async function dueExecutions(db: Db, nowMs: number, limit: number): Promise<ExecutionRecord[]> {
  const rows = await db
    .selectFrom('executions')
    .selectAll()
    .where('status', '=', 'IN_PROGRESS')
    .where((eb) => eb.or([eb('deadline_ms', '<=', nowMs), eb('step_deadline_ms', '<=', nowMs)]))
    .orderBy('execution_number')
    .limit(limit)
    .execute();
  return rows.map(toExecution);
}

export async function stalePending(db: Db, beforeMs: number, limit: number): Promise<ExecutionRecord[]> {
  const rows = await db
    .selectFrom('executions')
    .selectAll()
    .where('status', '=', 'QUEUED')
    .where('artifact', 'is not', null)
    .where('released_ms', 'is not', null)
    .where('last_updated_ms', '<', beforeMs)
    .orderBy('execution_number')
    .limit(limit)
    .execute();
  return rows.map(toExecution);
}

export async function countExecutions(db: Db, jobId: string): Promise<Partial<Record<JobStatus, number>>> {
  const rows = await db
    .selectFrom('executions')
    .select(['status', (eb) => eb.fn.countAll().as('n')])
    .where('job_id', '=', jobId)
    .groupBy('status')
    .execute();
  return Object.fromEntries(rows.map((r) => [r.status, Number(r.n)]));
}
