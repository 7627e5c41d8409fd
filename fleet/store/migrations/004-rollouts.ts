import type { Migration } from './types.js';
import { MS } from './types.js';

/**
 * Rollouts: a deployment's waves (size, bake, state and its timestamps: absolute, so a worker that restarts resumes a
 * bake with the time that remained), when each execution was released to its thing (NULL: its wave has not reached
 * it, and the thing is never told of it), the deployment's rollout state (abort figures, rollbacks), and each
 * artifact's manifest digest (so an agent that still has a version installed re-activates it without fetching it:
 * rollbacks). Executions
 * that existed before are released as of when they were queued: they were visible to their things already.
 */
export const rollouts: Migration = {
  version: 4,
  name: 'rollouts',
  async up(db) {
    await db.schema
      .createTable('rollout_waves')
      .addColumn('deployment_id', 'text', (c) => c.notNull().references('deployments.id').onDelete('cascade'))
      .addColumn('wave', 'integer', (c) => c.notNull())
      .addColumn('size', 'integer', (c) => c.notNull())
      .addColumn('bake_ms', MS, (c) => c.notNull())
      .addColumn('state', 'text', (c) => c.notNull())
      .addColumn('version_number', 'integer', (c) => c.notNull())
      .addColumn('started_ms', MS)
      .addColumn('ended_ms', MS)
      .addColumn('bake_until_ms', MS)
      .addColumn('figures_json', 'text', (c) => c.notNull().defaultTo('{}'))
      .addPrimaryKeyConstraint('rollout_waves_pk', ['deployment_id', 'wave'])
      .execute();
    await db.schema.alterTable('executions').addColumn('released_ms', MS).execute();
    await db
      .updateTable('executions')
      .set((eb) => ({ released_ms: eb.ref('queued_ms') }))
      .execute();
    await db.schema.createIndex('executions_job_wave').on('executions').columns(['job_id', 'wave']).execute();
    await db.schema.alterTable('artifacts').addColumn('manifest_sha256', 'text').execute();
    await db.schema
      .alterTable('deployments')
      .addColumn('rollout_json', 'text', (c) => c.notNull().defaultTo('{}'))
      .execute();
  },
};
