import type Sqlite from 'better-sqlite3';
import type { SqliteDatabase, SqliteStatement } from 'kysely';

/** How many distinct SQL texts keep their prepared statement (an `IN (?, ?, …)` list makes one text per length). */
export const SQLITE_STATEMENT_CACHE_SIZE = 256;

/**
 * The better-sqlite3 database as Kysely's SqliteDialect sees it, with each SQL text prepared once. Kysely prepares
 * every query it runs, and preparing (parsing, planning) cost more than running the statement for the registry's
 * writes: a status message is five statements (begin, read, upsert, commit) on a table of 16 columns. SQLite
 * re-prepares a cached statement by itself when the schema changes (a migration), so `SELECT *` stays right.
 * Kysely runs one statement at a time on its single connection, so a cached statement is never in use twice.
 * The least recently used text is dropped past `size`.
 */
export function cachingDatabase(database: Sqlite.Database, size = SQLITE_STATEMENT_CACHE_SIZE): SqliteDatabase {
  const statements = new Map<string, SqliteStatement>();
  return {
    close: () => {
      statements.clear();
      database.close();
    },
    prepare: (sql) => {
      const cached = statements.get(sql);
      if (cached !== undefined) {
        // Map keeps insertion order: moving the text to the end makes the first one the least recently used.
        statements.delete(sql);
        statements.set(sql, cached);
        return cached;
      }
      const statement = database.prepare(sql);
      statements.set(sql, statement);
      if (statements.size > size) {
        const oldest = statements.keys().next().value;
        if (oldest !== undefined) statements.delete(oldest);
      }
      return statement;
    },
  };
}
