import { resolve } from 'node:path';
import { OutpostError } from '../../runtime/errors.js';
import { KyselyStore } from './kysely-store.js';
import { openPostgres, redactPostgresUrl } from './postgres.js';
import { type StoreRetryPolicy } from './retry.js';
import { openSqlite } from './sqlite.js';

/**
 * `--db sqlite:<file>` (default `sqlite:<data-dir>/fleet.db`) or `--db postgres://user@host:port/db`: opens the
 * database, brings its schema up to date (refusing one newer than this code) and returns the store.
 */
export interface OpenStoreOptions {
  readonly url: string;
  readonly retry?: StoreRetryPolicy;
  readonly sqliteBusyTimeoutMs?: number;
  readonly sqliteMaxPageCount?: number;
  readonly postgresConnectTimeoutMs?: number;
  /** Migrate only up to this version (tests of migrations); default the latest. */
  readonly schemaVersion?: number;
}

export const DB_URL_FORMS = 'sqlite:<file> or postgres://user[:password]@host[:port]/database';

export async function openStore(options: OpenStoreOptions): Promise<KyselyStore> {
  const { url } = options;
  let store: KyselyStore;
  if (url.startsWith('sqlite:')) {
    const file = url.slice('sqlite:'.length).replace(/^\/\/(?=\/)/, '');
    if (file === '') throw invalid(url);
    const location = resolve(file);
    store = new KyselyStore(
      openSqlite({
        file: location,
        ...(options.sqliteBusyTimeoutMs === undefined ? {} : { busyTimeoutMs: options.sqliteBusyTimeoutMs }),
        ...(options.sqliteMaxPageCount === undefined ? {} : { maxPageCount: options.sqliteMaxPageCount }),
      }),
      'sqlite',
      location,
      options.retry,
    );
  } else if (/^postgres(ql)?:\/\//.test(url)) {
    store = new KyselyStore(
      openPostgres({
        url,
        ...(options.postgresConnectTimeoutMs === undefined
          ? {}
          : { connectTimeoutMs: options.postgresConnectTimeoutMs }),
      }),
      'postgres',
      redactPostgresUrl(url),
      options.retry,
    );
  } else {
    throw invalid(url);
  }
  try {
    await store.migrateTo(options.schemaVersion);
  } catch (error) {
    await store.close().catch(() => undefined);
    throw error;
  }
  return store;
}

function invalid(url: string): OutpostError {
  return new OutpostError(
    'INVALID_ARGUMENT',
    `--db ${JSON.stringify(url)} is not a database URL: expected ${DB_URL_FORMS}`,
    {
      details: { url, accepted: DB_URL_FORMS },
    },
  );
}
