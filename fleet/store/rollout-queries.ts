import type { Kysely } from 'kysely';
import { OutpostError } from '../../runtime/errors.js';
import { appendEvent, getDeployment, notFound } from './deployment-queries.js';
import type { Dialect } from './migrations/index.js';
import { toDeployment, toEvent, toExecution, toWave } from './rows.js';
import type { Database } from './schema.js';
import type {
  DeploymentRecord,
  FleetEvent,
  ExecutionRecord,
  NewExecution,
  RolloutState,
  WaveChange,
  WaveRecord,
} from './types.js';

/** Waves, releases, retries and the rollout state (kysely-store.ts wraps them in error mapping and retries). */
type Db = Kysely<Database>;

export async function listWaves(db: Db, jobId: string): Promise<WaveRecord[]> {
  const rows = await db
    .selectFrom('rollout_waves')
    .selectAll()
    .where('deployment_id', '=', jobId)
    .orderBy('wave')
    .execute();
  return rows.map(toWave);
}

export async function transitionWave(
  db: Db,
  dialect: Dialect,
  jobId: string,
  wave: number,
  expectedVersion: number,
  change: WaveChange,
): Promise<WaveRecord> {
  return db.transaction().execute(async (trx) => {
    const row = await trx
      .updateTable('rollout_waves')
      .set({
        state: change.state,
        version_number: expectedVersion + 1,
        ...(change.startedMs === undefined ? {} : { started_ms: change.startedMs }),
        ...(change.endedMs === undefined ? {} : { ended_ms: change.endedMs }),
        ...(change.bakeUntilMs === undefined ? {} : { bake_until_ms: change.bakeUntilMs }),
        ...(change.figures === undefined ? {} : { figures_json: JSON.stringify(change.figures) }),
      })
      .where('deployment_id', '=', jobId)
      .where('wave', '=', wave)
      .where('version_number', '=', expectedVersion)
      .returningAll()
      .executeTakeFirst();
    if (row === undefined) {
      const current = await trx
        .selectFrom('rollout_waves')
        .selectAll()
        .where('deployment_id', '=', jobId)
        .where('wave', '=', wave)
        .executeTakeFirst();
      if (current === undefined)
        throw new OutpostError('INTERNAL', `deployment ${jobId} has no wave ${wave}`, { details: { jobId, wave } });
      throw new OutpostError(
        'STORE_CONFLICT',
        `wave ${wave} of ${jobId} is at version ${current.version_number}, not ${expectedVersion}`,
        { details: { jobId, wave, expectedVersion, current: toWave(current) } },
      );
    }
    if (change.event !== undefined) await appendEvent(trx, dialect, change.event, change.nowMs);
    return toWave(row);
  });
}

export async function releaseExecutions(
  db: Db,
  dialect: Dialect,
  jobId: string,
  executionNumbers: readonly number[],
  nowMs: number,
): Promise<ExecutionRecord[]> {
  if (executionNumbers.length === 0) return [];
  return db.transaction().execute(async (trx) => {
    // Only the unreleased ones move: a second worker releasing the same executions changes nothing.
    const rows = await trx
      .updateTable('executions')
      .set({ released_ms: nowMs })
      .where('job_id', '=', jobId)
      .where('execution_number', 'in', [...executionNumbers])
      .where('released_ms', 'is', null)
      // Never once the deployment has left ACTIVE (an abort that landed a moment before wins).
      .where((eb) =>
        eb.exists(eb.selectFrom('deployments').select('id').where('id', '=', jobId).where('state', '=', 'ACTIVE')),
      )
      .returningAll()
      .execute();
    const released = rows.map(toExecution);
    if (released.length > 0) {
      await appendEvent(
        trx,
        dialect,
        {
          type: 'execution.released',
          deploymentId: jobId,
          data: { things: released.map((e) => e.thing), waves: [...new Set(released.map((e) => e.wave ?? 0))] },
        },
        nowMs,
      );
    }
    return released;
  });
}

export async function releasedSince(db: Db, jobId: string, sinceMs: number): Promise<number> {
  const row = await db
    .selectFrom('executions')
    .select((eb) => eb.fn.countAll().as('n'))
    .where('job_id', '=', jobId)
    .where('released_ms', '>=', sinceMs)
    .executeTakeFirst();
  return Number(row?.n ?? 0);
}

/** A retry (jobExecutionsRetryConfig): a new execution row, `retry` one higher; a second insert of it is a no-op. */
export async function addRetry(
  db: Db,
  dialect: Dialect,
  jobId: string,
  execution: NewExecution & { readonly retry: number },
  nowMs: number,
): Promise<ExecutionRecord | undefined> {
  return db.transaction().execute(async (trx) => {
    const row = await trx
      .insertInto('executions')
      .values({
        job_id: jobId,
        thing: execution.thing,
        retry: execution.retry,
        artifact: execution.artifact ?? null,
        fit: execution.fit ?? null,
        status: 'QUEUED',
        status_details_json: '{}',
        version_number: 1,
        queued_ms: nowMs,
        started_ms: null,
        last_updated_ms: nowMs,
        attempts: 0,
        wave: execution.wave ?? null,
        previous_version: null,
        deadline_ms: null,
        step_deadline_ms: null,
        released_ms: nowMs,
      })
      .onConflict((oc) => oc.columns(['job_id', 'thing', 'retry']).doNothing())
      .returningAll()
      .executeTakeFirst();
    if (row === undefined) return undefined;
    await appendEvent(
      trx,
      dialect,
      { type: 'execution.retried', deploymentId: jobId, thing: execution.thing, data: { retry: execution.retry } },
      nowMs,
    );
    return toExecution(row);
  });
}

export async function setRolloutState(
  db: Db,
  id: string,
  expectedVersion: number,
  rollout: RolloutState,
  nowMs: number,
): Promise<DeploymentRecord> {
  const row = await db
    .updateTable('deployments')
    .set({ rollout_json: JSON.stringify(rollout), updated_ms: nowMs, version_number: expectedVersion + 1 })
    .where('id', '=', id)
    .where('version_number', '=', expectedVersion)
    .returningAll()
    .executeTakeFirst();
  if (row !== undefined) return toDeployment(row);
  const current = await getDeployment(db, id);
  if (current === undefined) throw notFound(id);
  throw new OutpostError(
    'STORE_CONFLICT',
    `deployment ${id} is at version ${current.versionNumber}, not ${expectedVersion}`,
    {
      details: { id, expectedVersion, current },
    },
  );
}

/** ACTIVE deployments, and ended ones whose switched devices still need their rollback deployments. */
export async function rolloutsToDrive(db: Db): Promise<DeploymentRecord[]> {
  const rows = await db
    .selectFrom('deployments')
    .selectAll()
    .where((eb) =>
      eb.or([
        eb('state', '=', 'ACTIVE'),
        eb.and([
          eb('state', 'in', ['ABORTED', 'CANCELED']),
          eb('rollout_json', 'like', '%"rollback":true%'),
          eb('rollout_json', 'not like', '%"rollbackDone":true%'),
        ]),
      ]),
    )
    .orderBy('created_ms')
    .execute();
  return rows.map(toDeployment);
}

export async function deploymentEvents(
  db: Db,
  deploymentId: string,
  after: number,
  limit: number,
): Promise<FleetEvent[]> {
  const rows = await db
    .selectFrom('events')
    .selectAll()
    .where('deployment_id', '=', deploymentId)
    .where('id', '>', after)
    .orderBy('id')
    .limit(limit)
    .execute();
  return rows.map(toEvent);
}
