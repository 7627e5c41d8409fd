import type { Migration } from './types.js';

/**
 * Drift: each thing's latest drift figures per monitored version, as its status message reports them (the worst
 * scores against the artifact's baseline, runtime/monitor), for `fleet things --drift`, the dashboard and the
 * rollouts' drift abort criterion.
 */
export const drift: Migration = {
  version: 5,
  name: 'drift',
  async up(db) {
    await db.schema
      .alterTable('things')
      .addColumn('drift_json', 'text', (c) => c.notNull().defaultTo('[]'))
      .execute();
  },
};
