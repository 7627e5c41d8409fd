import type { Migration } from './types.js';
import { MS } from './types.js';

/**
 * Live workers (`fleet serve` processes on one database), each renewing its row while it runs. Where the broker
 * cannot share device requests between them (a shared subscription that does not deliver `$aws/…` topics), the
 * workers split the things among themselves by this list instead (service/ownership.ts).
 */
export const workers: Migration = {
  version: 3,
  name: 'workers',
  async up(db) {
    await db.schema
      .createTable('workers')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('started_ms', MS, (c) => c.notNull())
      .addColumn('heartbeat_ms', MS, (c) => c.notNull())
      .addColumn('info_json', 'text', (c) => c.notNull().defaultTo('{}'))
      .execute();
  },
};
