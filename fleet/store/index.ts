/** The fleet's database: one interface, SQLite or PostgreSQL behind one query layer. See README.md in this folder. */
export type * from './types.js';
export { DEPLOYMENT_STATES } from './types.js';
export { KyselyStore } from './kysely-store.js';
export { DB_URL_FORMS, openStore, type OpenStoreOptions } from './open.js';
export { MIGRATIONS, SCHEMA_VERSION } from './migrations/index.js';
export { DEFAULT_STORE_RETRY, type StoreRetryPolicy } from './retry.js';
