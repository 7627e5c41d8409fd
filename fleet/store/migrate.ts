import { type Kysely, sql } from 'kysely';
import { OutpostError } from '../../runtime/errors.js';
import { logger } from '../../runtime/log.js';
import { type Dialect, MIGRATIONS, SCHEMA_VERSION } from './migrations/index.js';
import type { Database } from './schema.js';

const log = logger('fleet.store');

/** PostgreSQL advisory lock key that serialises migrations between workers starting together ("outpost" in ASCII). */
const MIGRATION_LOCK = 0x6f7574706f7374;

/** The schema version recorded in the database (0 when empty). */
export async function schemaVersion(db: Kysely<Database>): Promise<number> {
  const row = await db
    .selectFrom('schema_version')
    .select((eb) => eb.fn.max('version').as('version'))
    .executeTakeFirst();
  // SQLite gives a number, PostgreSQL's max() over integer a number too: either way 0 when empty.
  return row?.version ?? 0;
}

/**
 * Brings the database to `target` (default: the latest this code knows), each migration in its own transaction with
 * the row that records it. A database already past what this code knows is refused, not touched: an older worker
 * must never write into a newer schema.
 */
export async function migrate(
  db: Kysely<Database>,
  dialect: Dialect,
  location: string,
  target: number = SCHEMA_VERSION,
): Promise<{ from: number; to: number }> {
  return db.connection().execute(async (conn) => {
    if (dialect === 'postgres') await sql`select pg_advisory_lock(${MIGRATION_LOCK})`.execute(conn);
    try {
      await conn.schema
        .createTable('schema_version')
        .ifNotExists()
        .addColumn('version', 'integer', (c) => c.primaryKey())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('applied_ms', 'bigint', (c) => c.notNull())
        .execute();
      const from = await schemaVersion(conn);
      if (from > SCHEMA_VERSION) {
        throw new OutpostError(
          'STORE_SCHEMA_NEWER',
          `the fleet database at ${location} is at schema version ${from}, newer than this outpost knows (${SCHEMA_VERSION}): upgrade outpost before pointing it at this database`,
          { details: { location, found: from, known: SCHEMA_VERSION } },
        );
      }
      for (const migration of MIGRATIONS) {
        if (migration.version <= from || migration.version > target) continue;
        await conn.transaction().execute(async (trx) => {
          await migration.up(trx, dialect);
          await trx
            .insertInto('schema_version')
            .values({ version: migration.version, name: migration.name, applied_ms: Date.now() })
            .execute();
        });
        log.info({ location, version: migration.version, name: migration.name }, 'migration applied');
      }
      return { from, to: Math.max(from, Math.min(target, SCHEMA_VERSION)) };
    } finally {
      if (dialect === 'postgres') await sql`select pg_advisory_unlock(${MIGRATION_LOCK})`.execute(conn);
    }
  });
}
