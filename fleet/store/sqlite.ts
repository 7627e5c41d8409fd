import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import Sqlite from 'better-sqlite3';
import { Kysely, SqliteDialect } from 'kysely';
import { storeError } from './errors.js';
import type { Database } from './schema.js';
import { cachingDatabase } from './sqlite-statements.js';

/**
 * SQLite in a file, through better-sqlite3 (12.x: 13.x does not run on Node 20). WAL journal: readers never wait for
 * the writer, and a commit survives SIGKILL of the process; `synchronous=NORMAL` adds that it survives a crash of
 * the process but not necessarily a power cut at the very moment of commit (SQLite docs, "WAL mode"). A writer that
 * finds the database locked waits `busyTimeoutMs` before STORE_LOCKED.
 */
export interface SqliteOptions {
  readonly file: string;
  readonly busyTimeoutMs?: number; // milliseconds, default 5 s
  /** A size limit in pages (PRAGMA max_page_count); tests use it to make "database full" real. */
  readonly maxPageCount?: number;
}

export const DEFAULT_SQLITE_BUSY_TIMEOUT_MS = 5_000; // milliseconds

export function openSqlite(options: SqliteOptions): Kysely<Database> {
  const file = resolve(options.file);
  let database: Sqlite.Database;
  try {
    mkdirSync(dirname(file), { recursive: true });
    database = new Sqlite(file, { timeout: options.busyTimeoutMs ?? DEFAULT_SQLITE_BUSY_TIMEOUT_MS });
    database.pragma('journal_mode = WAL');
    database.pragma('synchronous = NORMAL');
    database.pragma('foreign_keys = ON');
    if (options.maxPageCount !== undefined) database.pragma(`max_page_count = ${Math.floor(options.maxPageCount)}`);
  } catch (error) {
    throw storeError(error, file, 'open');
  }
  return new Kysely<Database>({ dialect: new SqliteDialect({ database: cachingDatabase(database) }) });
}
