import type { Insertable, Kysely, Selectable } from 'kysely';
import type { Dialect } from './migrations/index.js';
import { OutpostError } from '../../runtime/errors.js';
import { toArtifact, toGroup, toThing } from './rows.js';
import type { Database, ThingsTable } from './schema.js';
import type { ArtifactRecord, GroupRecord, SeenThings, ThingRecord, ThingStatusUpdate } from './types.js';

/** Things, groups and artifacts: the registry's queries (kysely-store.ts wraps them in error mapping and retries). */
type Db = Kysely<Database>;

export async function getThing(db: Db, name: string): Promise<ThingRecord | undefined> {
  const row = await db.selectFrom('things').selectAll().where('name', '=', name).executeTakeFirst();
  return row === undefined ? undefined : toThing(row);
}

export async function listThings(db: Db, names?: readonly string[]): Promise<ThingRecord[]> {
  if (names !== undefined && names.length === 0) return [];
  let query = db.selectFrom('things').selectAll().orderBy('name');
  if (names !== undefined) query = query.where('name', 'in', [...names]);
  return (await query.execute()).map(toThing);
}

/**
 * Things heard from after `afterMs` (their last status message, oldest first, at most `limit`), and the newest
 * last-seen time of all: what the dashboard's live feed uses to refresh health figures, which are not in the event log.
 */
export async function thingsSeenAfter(db: Db, afterMs: number, limit: number): Promise<SeenThings> {
  const latest = await seenQueries(db, afterMs, limit).latest.executeTakeFirst();
  // PostgreSQL's bigint arrives as text (see rows.ts); an empty registry gives null.
  const latestMs = Number(latest?.latest ?? 0);
  if (limit <= 0 || latestMs <= afterMs) return { things: [], latestMs };
  const rows = await seenQueries(db, afterMs, limit).seen.execute();
  return { things: rows.map((r) => r.name), latestMs };
}

/** thingsSeenAfter's two queries, as built (the migration tests read their plans: both use `things_last_seen`). */
export function seenQueries(db: Db, afterMs: number, limit: number) {
  return {
    latest: db.selectFrom('things').select((eb) => eb.fn.max<number | string | null>('last_seen_ms').as('latest')),
    seen: db
      .selectFrom('things')
      .select(['name', 'last_seen_ms'])
      .where('last_seen_ms', '>', afterMs)
      .orderBy('last_seen_ms')
      .orderBy('name')
      .limit(limit),
  };
}

/**
 * One status message: the thing is created on first sight, its last-seen time moves, and what the message carries
 * replaces what was known (a last will carries only `connected: false`, so the rest stays). It is the registry's
 * hot path (every device, every status interval), so it costs as few statements as the engine allows: on
 * PostgreSQL one (the thing as it was is read in a CTE, which sees the table before the upsert, and the upsert
 * returns the row); on SQLite, in-process, a transaction of two (its `connected` as it was, the upsert returning
 * the row) — SQLite does not say what a RETURNING subquery sees.
 */
export async function recordStatus(
  db: Db,
  dialect: Dialect,
  update: ThingStatusUpdate,
): Promise<{ thing: ThingRecord; created: boolean; cameOnline: boolean }> {
  const reported: Partial<ThingsTable> = {
    connected: update.connected ? 1 : 0,
    last_seen_ms: update.atMs,
    updated_ms: update.atMs,
    ...(update.target === undefined
      ? {}
      : {
          profile: update.target.profile ?? null,
          cpu_profile: update.target.cpuProfile ?? update.target.profile ?? null,
          arch: update.target.arch ?? null,
        }),
    ...(update.agentVersion === undefined ? {} : { agent_version: update.agentVersion }),
    ...(update.onnxruntimeVersion === undefined ? {} : { ort_version: update.onnxruntimeVersion }),
    ...(update.models === undefined ? {} : { models_json: JSON.stringify(update.models) }),
    ...(update.health === undefined ? {} : { health_json: JSON.stringify(update.health) }),
    ...(update.drift === undefined ? {} : { drift_json: JSON.stringify(update.drift) }),
    ...(update.shadows === undefined ? {} : { shadows_json: JSON.stringify(update.shadows) }),
    ...(update.guardrails === undefined ? {} : { guardrails_json: JSON.stringify(update.guardrails) }),
  };
  const values: Insertable<ThingsTable> = {
    name: update.name,
    first_seen_ms: update.atMs,
    last_seen_ms: update.atMs,
    updated_ms: update.atMs,
    connected: 0,
    models_json: '[]',
    health_json: '[]',
    drift_json: '[]',
    shadows_json: '[]',
    guardrails_json: '[]',
    attributes_json: '{}',
    ...reported,
  };
  const recorded = (row: Selectable<ThingsTable> | undefined, before: number | null | undefined) => {
    if (row === undefined) throw new OutpostError('INTERNAL', `thing ${update.name} vanished while recorded`);
    return {
      thing: toThing(row),
      created: before === undefined || before === null,
      cameOnline: update.connected && before !== 1,
    };
  };
  if (dialect === 'postgres') {
    const row = await db
      .with('before', (q) => q.selectFrom('things').select('connected').where('name', '=', update.name))
      .insertInto('things')
      .values(values)
      .onConflict((oc) => oc.column('name').doUpdateSet(reported))
      .returningAll()
      .returning((eb) => eb.selectFrom('before').select('connected').as('connected_before'))
      .executeTakeFirst();
    return recorded(row, row?.connected_before);
  }
  return db.transaction().execute(async (trx) => {
    const before = await trx
      .selectFrom('things')
      .select('connected')
      .where('name', '=', update.name)
      .executeTakeFirst();
    const row = await trx
      .insertInto('things')
      .values(values)
      .onConflict((oc) => oc.column('name').doUpdateSet(reported))
      .returningAll()
      .executeTakeFirst();
    return recorded(row, before?.connected);
  });
}

export async function setAttributes(
  db: Db,
  name: string,
  attributes: Readonly<Record<string, string | null>>,
  nowMs: number,
): Promise<ThingRecord> {
  return db.transaction().execute(async (trx) => {
    const before = await getThing(trx, name);
    const merged = new Map(Object.entries(before?.attributes ?? {}));
    for (const [key, value] of Object.entries(attributes)) {
      if (value === null) merged.delete(key);
      else merged.set(key, value);
    }
    const json = JSON.stringify(Object.fromEntries(merged));
    await trx
      .insertInto('things')
      .values({
        name,
        connected: 0,
        first_seen_ms: nowMs,
        last_seen_ms: 0,
        updated_ms: nowMs,
        models_json: '[]',
        health_json: '[]',
        drift_json: '[]',
        shadows_json: '[]',
        guardrails_json: '[]',
        attributes_json: json,
      })
      .onConflict((oc) => oc.column('name').doUpdateSet({ attributes_json: json, updated_ms: nowMs }))
      .execute();
    const thing = await getThing(trx, name);
    if (thing === undefined) throw new OutpostError('INTERNAL', `thing ${name} vanished while updated`);
    return thing;
  });
}

export async function createGroup(db: Db, group: GroupRecord): Promise<GroupRecord> {
  return db.transaction().execute(async (trx) => {
    const existing = await trx.selectFrom('groups').select('name').where('name', '=', group.name).executeTakeFirst();
    if (existing !== undefined) {
      throw new OutpostError('ALREADY_EXISTS', `group ${group.name} already exists`, {
        details: { group: group.name },
      });
    }
    await trx
      .insertInto('groups')
      .values({
        name: group.name,
        kind: group.kind,
        where_json: group.kind === 'dynamic' ? JSON.stringify(group.where) : null,
        created_ms: group.createdMs,
      })
      .execute();
    if (group.kind === 'static' && group.things.length > 0) {
      await trx
        .insertInto('group_members')
        .values([...new Set(group.things)].map((thing) => ({ group_name: group.name, thing_name: thing })))
        .execute();
    }
    const created = await getGroup(trx, group.name);
    if (created === undefined) throw new OutpostError('INTERNAL', `group ${group.name} vanished while created`);
    return created;
  });
}

export async function getGroup(db: Db, name: string): Promise<GroupRecord | undefined> {
  const row = await db.selectFrom('groups').selectAll().where('name', '=', name).executeTakeFirst();
  if (row === undefined) return undefined;
  const members = await db.selectFrom('group_members').select('thing_name').where('group_name', '=', name).execute();
  return toGroup(
    row,
    members.map((m) => m.thing_name),
  );
}

export async function listGroups(db: Db): Promise<GroupRecord[]> {
  const rows = await db.selectFrom('groups').selectAll().orderBy('name').execute();
  const members = await db.selectFrom('group_members').selectAll().execute();
  return rows.map((row) =>
    toGroup(
      row,
      members.filter((m) => m.group_name === row.name).map((m) => m.thing_name),
    ),
  );
}

export async function putArtifact(db: Db, artifact: ArtifactRecord): Promise<ArtifactRecord> {
  await db
    .insertInto('artifacts')
    .values({
      sha256: artifact.sha256,
      name: artifact.name,
      version: artifact.version,
      target_profile: artifact.target.profile,
      target_arch: artifact.target.arch,
      bytes: artifact.bytes,
      block_size: artifact.blockSize,
      stream_id: artifact.streamId,
      stream_version: artifact.streamVersion,
      files_json: JSON.stringify(artifact.files),
      created_ms: artifact.createdMs,
      manifest_sha256: artifact.manifestSha256 ?? null,
      delivery_json: artifact.delivery === undefined ? null : JSON.stringify(artifact.delivery),
      delivery_stream_id: artifact.delivery?.streamId ?? null,
    })
    // The same bytes again change nothing, except that an artifact stored before its files-layout stream existed
    // (migration 7) gains it when uploaded again.
    .onConflict((oc) =>
      artifact.delivery === undefined
        ? oc.column('sha256').doNothing()
        : oc
            .column('sha256')
            .doUpdateSet({
              delivery_json: JSON.stringify(artifact.delivery),
              delivery_stream_id: artifact.delivery.streamId,
            })
            .where('artifacts.delivery_json', 'is', null),
    )
    .execute();
  const stored = await getArtifact(db, artifact.sha256);
  if (stored === undefined) throw new OutpostError('INTERNAL', `artifact ${artifact.sha256} vanished while stored`);
  return stored;
}

export async function getArtifact(db: Db, sha256: string): Promise<ArtifactRecord | undefined> {
  const row = await db.selectFrom('artifacts').selectAll().where('sha256', '=', sha256).executeTakeFirst();
  return row === undefined ? undefined : toArtifact(row);
}

export async function getArtifactByStream(db: Db, streamId: string): Promise<ArtifactRecord | undefined> {
  // The archive stream first, then the files layout's (a column since migration 7).
  const row =
    (await db.selectFrom('artifacts').selectAll().where('stream_id', '=', streamId).executeTakeFirst()) ??
    (await db.selectFrom('artifacts').selectAll().where('delivery_stream_id', '=', streamId).executeTakeFirst());
  return row === undefined ? undefined : toArtifact(row);
}

export async function listArtifacts(db: Db): Promise<ArtifactRecord[]> {
  return (await db.selectFrom('artifacts').selectAll().orderBy('created_ms').execute()).map(toArtifact);
}

export async function heartbeat(
  db: Db,
  id: string,
  nowMs: number,
  info: Readonly<Record<string, unknown>>,
): Promise<void> {
  const info_json = JSON.stringify(info);
  await db
    .insertInto('workers')
    .values({ id, started_ms: nowMs, heartbeat_ms: nowMs, info_json })
    .onConflict((oc) => oc.column('id').doUpdateSet({ heartbeat_ms: nowMs, info_json }))
    .execute();
}

export async function liveWorkers(db: Db, sinceMs: number): Promise<string[]> {
  const rows = await db.selectFrom('workers').select('id').where('heartbeat_ms', '>=', sinceMs).orderBy('id').execute();
  return rows.map((r) => r.id);
}

export async function removeWorker(db: Db, id: string): Promise<void> {
  await db.deleteFrom('workers').where('id', '=', id).execute();
}
