import type { Migration } from './types.js';

/**
 * Serving state: each thing's shadow comparisons (agreement, cosine, latency of the shadow against production) and
 * guardrail watches (a version baking after a deployment: what has been counted so far), as its status message
 * reports them (device-agent/storage/status.ts), for the dashboard's device page and the API's thing view.
 */
export const serving: Migration = {
  version: 6,
  name: 'serving',
  async up(db) {
    await db.schema
      .alterTable('things')
      .addColumn('shadows_json', 'text', (c) => c.notNull().defaultTo('[]'))
      .execute();
    await db.schema
      .alterTable('things')
      .addColumn('guardrails_json', 'text', (c) => c.notNull().defaultTo('[]'))
      .execute();
  },
};
