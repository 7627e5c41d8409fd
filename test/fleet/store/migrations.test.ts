import Sqlite from 'better-sqlite3';
import {
  DummyDriver,
  Kysely,
  PostgresAdapter,
  PostgresIntrospector,
  PostgresQueryCompiler,
  SqliteAdapter,
  SqliteIntrospector,
  SqliteQueryCompiler,
} from 'kysely';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { MIGRATIONS, SCHEMA_VERSION, openStore } from '../../../fleet/store/index.js';
import { seenQueries } from '../../../fleet/store/registry-queries.js';
import type { Database } from '../../../fleet/store/schema.js';
import { isOutpostError } from '../../../runtime/errors.js';
import { storeKinds } from '../../helpers/fleet-stores.js';

/** Raw SQL against a database, outside the store: what an older release (or a newer one) would have written. */
async function sqlOn(url: string, statements: readonly string[]): Promise<void> {
  if (url.startsWith('sqlite:')) {
    const db = new Sqlite(url.slice('sqlite:'.length));
    try {
      for (const statement of statements) db.exec(statement);
    } finally {
      db.close();
    }
    return;
  }
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    for (const statement of statements) await client.query(statement);
  } finally {
    await client.end();
  }
}

/** The query plan of `sql` on the database, as text (PostgreSQL without sequential scans: a tiny table favours them). */
async function planOf(url: string, sql: string, parameters: readonly unknown[]): Promise<string> {
  if (url.startsWith('sqlite:')) {
    const db = new Sqlite(url.slice('sqlite:'.length), { readonly: true });
    try {
      const rows = db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...parameters) as { detail: string }[];
      return rows.map((r) => r.detail).join('\n');
    } finally {
      db.close();
    }
  }
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query('SET enable_seqscan = off');
    const { rows } = await client.query<{ 'QUERY PLAN': string }>(`EXPLAIN ${sql}`, [...parameters]);
    return rows.map((r) => r['QUERY PLAN']).join('\n');
  } finally {
    await client.end();
  }
}

/** A Kysely that only compiles (no connection), to read the SQL the store's query builders make. */
function compiler(name: 'sqlite' | 'postgres'): Kysely<Database> {
  const sqlite = name === 'sqlite';
  return new Kysely<Database>({
    dialect: {
      createAdapter: () => (sqlite ? new SqliteAdapter() : new PostgresAdapter()),
      createDriver: () => new DummyDriver(),
      createIntrospector: (db) => (sqlite ? new SqliteIntrospector(db) : new PostgresIntrospector(db)),
      createQueryCompiler: () => (sqlite ? new SqliteQueryCompiler() : new PostgresQueryCompiler()),
    },
  });
}

/** Rows each version's schema can hold, written as that version's code would have written them. */
const SEEDS: Readonly<Record<number, readonly string[]>> = Object.freeze({
  1: [
    `INSERT INTO things (name, connected, first_seen_ms, last_seen_ms, profile, cpu_profile, arch, models_json, health_json, attributes_json, updated_ms)
     VALUES ('pi-1', 1, 1700000000000, 1700000005000, 'arm64:cortex-a72', 'arm64:cortex-a72', 'arm64', '[]', '[]', '{"site":"plant-3"}', 1700000005000)`,
    `INSERT INTO groups (name, kind, where_json, created_ms) VALUES ('pis', 'dynamic', '[{"key":"arch","value":"arm64"}]', 1700000000000)`,
    `INSERT INTO artifacts (sha256, name, version, target_profile, target_arch, bytes, block_size, stream_id, stream_version, files_json, created_ms)
     VALUES ('${'a'.repeat(64)}', 'cnn', '1.0.0', 'arm64:cortex-a72', 'arm64', 1234, 65536, 'a-aaaa', 1, '[]', 1700000000000)`,
  ],
  2: [
    `INSERT INTO deployments (id, model, version, state, target_json, strategy_json, options_json, artifacts_json, created_ms, updated_ms, version_number)
     VALUES ('d-1', 'cnn', '1.0.0', 'ACTIVE', '{"group":"pis"}', '{"type":"all-at-once"}', '{}', '["${'a'.repeat(64)}"]', 1700000000000, 1700000000000, 1)`,
    `INSERT INTO executions (job_id, thing, retry, artifact, status, status_details_json, version_number, queued_ms, last_updated_ms, attempts)
     VALUES ('d-1', 'pi-1', 0, '${'a'.repeat(64)}', 'QUEUED', '{}', 1, 1700000000000, 1700000000000, 0)`,
  ],
  3: [
    `INSERT INTO workers (id, started_ms, heartbeat_ms, info_json) VALUES ('w-1', 1700000000000, 1700000001000, '{}')`,
  ],
  4: [
    `INSERT INTO rollout_waves (deployment_id, wave, size, bake_ms, state, version_number, started_ms, bake_until_ms)
     VALUES ('d-1', 0, 1, 60000, 'BAKING', 3, 1700000000000, 1700000060000)`,
    `INSERT INTO executions (job_id, thing, retry, artifact, status, status_details_json, version_number, queued_ms, last_updated_ms, attempts, wave, released_ms)
     VALUES ('d-1', 'pi-1', 1, '${'a'.repeat(64)}', 'QUEUED', '{}', 1, 1700000000000, 1700000000000, 0, 0, NULL)`,
  ],
  5: [
    `UPDATE things SET drift_json = '[{"model":"cnn","version":"1.0.0","samples":300,"drifting":true,"scores":[]}]' WHERE name = 'pi-1'`,
  ],
  6: [
    `UPDATE things SET shadows_json = '[{"model":"cnn","version":"2.0.0","percent":10,"compared":5,"shadowErrors":0,"maxAbsDiff":0,"nonFiniteMismatches":0}]', guardrails_json = '[{"model":"cnn","version":"1.0.0","requests":3,"errors":0,"errorRate":0,"elapsedSeconds":1,"windowSeconds":60}]' WHERE name = 'pi-1'`,
  ],
  7: [
    `INSERT INTO artifacts (sha256, name, version, target_profile, target_arch, bytes, block_size, stream_id, stream_version, files_json, created_ms, manifest_sha256, delivery_json, delivery_stream_id)
     VALUES ('${'b'.repeat(64)}', 'cnn', '1.0.0', 'x86_64:avx2', 'x86_64', 5678, 65536, 'a-bbbb', 1, '[]', 1700000000000, NULL,
             '{"streamId":"a-bbbb-files","bytes":900,"files":[{"fileId":0,"sha256":"${'e'.repeat(64)}","bytes":300,"role":"delivery"}]}', 'a-bbbb-files')`,
  ],
  8: [
    `INSERT INTO things (name, connected, first_seen_ms, last_seen_ms, models_json, health_json, attributes_json, updated_ms)
     VALUES ('pi-2', 1, 1700000000000, 1700000009000, '[]', '[]', '{}', 1700000009000)`,
  ],
});

describe('migrations', () => {
  it('are numbered 1, 2, … without gaps, and every one has a seed for its upgrade test', () => {
    expect(MIGRATIONS.map((m) => m.version)).toEqual(Array.from({ length: SCHEMA_VERSION }, (_, i) => i + 1));
    for (const m of MIGRATIONS) expect(SEEDS[m.version], `seed for migration ${m.version}`).toBeDefined();
  });
});

describe.each(storeKinds())('migrations on $name', (kind) => {
  it.skipIf(kind.skip).each(MIGRATIONS.map((m) => m.version))(
    'from an empty database to version %i',
    async (version) => {
      const url = await kind.url(`empty_${version}`);
      const store = await openStore({ url, schemaVersion: version });
      try {
        expect(await store.schemaVersion()).toBe(version);
      } finally {
        await store.close();
      }
      // Every version's tables take the rows its code writes.
      await sqlOn(url, Array.from({ length: version }, (_, i) => SEEDS[i + 1] ?? []).flat());
    },
  );

  it.skipIf(kind.skip).each(MIGRATIONS.map((m) => m.version))(
    'to version %i from the previous one, keeping its rows',
    async (version) => {
      const url = await kind.url(`upgrade_${version}`);
      const seeded = Array.from({ length: version - 1 }, (_, i) => SEEDS[i + 1] ?? []).flat();
      const older = await openStore({ url, schemaVersion: version - 1 });
      expect(await older.schemaVersion()).toBe(version - 1);
      await older.close();
      await sqlOn(url, seeded);
      const store = await openStore({ url, schemaVersion: version });
      try {
        expect(await store.schemaVersion()).toBe(version);
        if (version === 3) expect((await store.listExecutions('d-1')).map((e) => e.thing)).toEqual(['pi-1']);
        if (version === 4) {
          // Executions from before rollouts were visible to their things: released as of when they were queued.
          expect(await store.listExecutions('d-1')).toMatchObject([
            { thing: 'pi-1', retry: 0, releasedMs: 1_700_000_000_000 },
          ]);
          expect(await store.getDeployment('d-1')).toMatchObject({ rollout: {} });
          expect(await store.listWaves('d-1')).toEqual([]);
        }
        if (version >= 2) {
          // What version 1 held survives, readable through today's store, and the new tables work.
          expect(await store.getThing('pi-1')).toMatchObject({ connected: true, attributes: { site: 'plant-3' } });
          expect(await store.getGroup('pis')).toMatchObject({
            kind: 'dynamic',
            where: [{ key: 'arch', value: 'arm64' }],
          });
          expect(await store.getArtifactByStream('a-aaaa')).toMatchObject({ bytes: 1234, blockSize: 65_536 });
        }
      } finally {
        await store.close();
      }
      await sqlOn(url, SEEDS[version] ?? []);
      const latest = await openStore({ url });
      try {
        if (version === 2) expect((await latest.listExecutions('d-1')).map((e) => e.status)).toEqual(['QUEUED']);
        if (version === 5)
          expect((await latest.getThing('pi-1'))?.drift).toMatchObject([{ model: 'cnn', drifting: true }]);
        if (version === 6) {
          const thing = await latest.getThing('pi-1');
          expect(thing?.shadows).toMatchObject([{ version: '2.0.0', compared: 5 }]);
          expect(thing?.guardrails).toMatchObject([{ version: '1.0.0', windowSeconds: 60 }]);
          // What 005 held is still there.
          expect(thing?.drift).toMatchObject([{ model: 'cnn', drifting: true }]);
        }
        if (version === 7) {
          // An artifact stored before the files layout reads as archive-only; one stored after, by either stream.
          expect((await latest.getArtifactByStream('a-aaaa'))?.delivery).toBeUndefined();
          expect(await latest.getArtifactByStream('a-bbbb-files')).toMatchObject({
            bytes: 5678,
            delivery: { streamId: 'a-bbbb-files', bytes: 900, files: [{ fileId: 0, role: 'delivery' }] },
          });
        }
        if (version === 8) {
          // The rows from before the index are in it: pi-1 was last seen at …5000, pi-2 at …9000.
          expect(await latest.thingsSeenAfter(1_700_000_006_000, 10)).toEqual({
            things: ['pi-2'],
            latestMs: 1_700_000_009_000,
          });
          expect((await latest.thingsSeenAfter(0, 10)).things).toEqual(['pi-1', 'pi-2']);
        }
        if (version === 4) {
          expect(await latest.listWaves('d-1')).toMatchObject([
            { wave: 0, state: 'BAKING', bakeUntilMs: 1_700_000_060_000 },
          ]);
          // A held retry is not the thing's to see.
          expect((await latest.thingExecutions('pi-1', { pending: true })).map((e) => e.retry)).toEqual([0]);
        }
      } finally {
        await latest.close();
      }
    },
  );

  it.skipIf(kind.skip)("thingsSeenAfter's queries read the things_last_seen index, not the table", async () => {
    const url = await kind.url('seen_plan');
    await (await openStore({ url })).close();
    const { latest, seen } = seenQueries(compiler(kind.name), 1_700_000_000_000, 50);
    for (const query of [latest, seen]) {
      const { sql, parameters } = query.compile();
      const plan = await planOf(url, sql, parameters);
      expect(plan, sql).toContain('things_last_seen');
      expect(plan, sql).not.toMatch(/SCAN things$|Seq Scan/m);
    }
  });

  it.skipIf(kind.skip)('refuses a schema newer than this code knows, and leaves it untouched', async () => {
    const url = await kind.url('newer');
    await (await openStore({ url })).close();
    await sqlOn(url, [
      `INSERT INTO schema_version (version, name, applied_ms) VALUES (${SCHEMA_VERSION + 1}, 'from-the-future', 0)`,
    ]);
    const refused = await openStore({ url }).then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(isOutpostError(refused, 'STORE_SCHEMA_NEWER')).toBe(true);
    expect((refused as Error).message).toContain(
      `schema version ${SCHEMA_VERSION + 1}, newer than this outpost knows (${SCHEMA_VERSION})`,
    );
    expect((refused as Error).message).toContain('upgrade outpost');
  });
});
