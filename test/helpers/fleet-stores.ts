import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { type KyselyStore, type OpenStoreOptions, openStore } from '../../fleet/store/index.js';
import { noticePostgresSkipped, postgresUnavailable, startPostgres, type TestPostgres } from './postgres.js';
import { suiteTmpDir } from './tmp.js';

/**
 * Both store implementations for `describe.each` (MQTT.js's abstract_store pattern): SQLite in a file, and a real
 * PostgreSQL started for the suite. Where PostgreSQL is not installed its half is skipped, said once on stderr.
 */
export interface StoreKind {
  readonly name: 'sqlite' | 'postgres';
  readonly skip: boolean;
  /** A fresh, empty database: its --db URL. */
  url(label: string): Promise<string>;
  /** A fresh store, migrated, closed by the caller. */
  open(label: string, options?: Omit<OpenStoreOptions, 'url'>): Promise<KyselyStore>;
  /** The PostgreSQL server (postgres kind only). */
  server(): TestPostgres | undefined;
}

let counter = 0;

/** Call at the top of a test file: registers the beforeAll/afterAll that start and stop the servers. */
export function storeKinds(): readonly StoreKind[] {
  let tmp: { dir: string; dispose: () => Promise<void> } | undefined;
  let postgres: TestPostgres | undefined;
  const unavailable = postgresUnavailable();
  if (unavailable !== undefined) noticePostgresSkipped(unavailable);
  beforeAll(async () => {
    tmp = await suiteTmpDir('outpost-store-');
    if (unavailable === undefined) postgres = await startPostgres();
  }, 60_000);
  afterAll(async () => {
    await postgres?.stop();
    await tmp?.dispose();
  });
  const sqliteUrl = (label: string) => {
    if (tmp === undefined) throw new Error('store suite not started');
    return Promise.resolve(`sqlite:${join(tmp.dir, `${label}-${++counter}.db`)}`);
  };
  const postgresUrl = (label: string) => {
    if (postgres === undefined) throw new Error('PostgreSQL not started');
    return postgres.database(`${label.replace(/[^a-z0-9_]/gi, '_').toLowerCase()}_${++counter}`);
  };
  const kind = (name: StoreKind['name'], url: (label: string) => Promise<string>, skip: boolean): StoreKind => ({
    name,
    skip,
    url,
    open: async (label, options = {}) => openStore({ url: await url(label), ...options }),
    server: () => postgres,
  });
  return [kind('sqlite', sqliteUrl, false), kind('postgres', postgresUrl, unavailable !== undefined)];
}
