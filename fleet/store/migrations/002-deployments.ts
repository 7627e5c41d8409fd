import type { Migration } from './types.js';
import { MS, idColumn } from './types.js';

/**
 * Deployments, their job documents (one per artifact, fixed at creation), executions with IoT Jobs' versioned state,
 * and the append-only event log. Room for rollouts: a deployment's `strategy_json` is stored as given, executions
 * carry `wave` and `retry`, and each records the version the device ran before it switched.
 */
export const deployments: Migration = {
  version: 2,
  name: 'deployments',
  async up(db, dialect) {
    await db.schema
      .createTable('deployments')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('model', 'text', (c) => c.notNull())
      .addColumn('version', 'text', (c) => c.notNull())
      .addColumn('state', 'text', (c) => c.notNull())
      .addColumn('target_json', 'text', (c) => c.notNull())
      .addColumn('strategy_json', 'text', (c) => c.notNull())
      .addColumn('options_json', 'text', (c) => c.notNull())
      .addColumn('artifacts_json', 'text', (c) => c.notNull())
      .addColumn('reason', 'text')
      .addColumn('created_ms', MS, (c) => c.notNull())
      .addColumn('updated_ms', MS, (c) => c.notNull())
      .addColumn('version_number', 'integer', (c) => c.notNull())
      .execute();
    await db.schema.createIndex('deployments_state').on('deployments').column('state').execute();
    await db.schema
      .createTable('deployment_documents')
      .addColumn('deployment_id', 'text', (c) => c.notNull().references('deployments.id').onDelete('cascade'))
      .addColumn('artifact_sha256', 'text', (c) => c.notNull().references('artifacts.sha256'))
      .addColumn('document_json', 'text', (c) => c.notNull())
      .addPrimaryKeyConstraint('deployment_documents_pk', ['deployment_id', 'artifact_sha256'])
      .execute();
    const id = idColumn(dialect);
    await db.schema
      .createTable('executions')
      .addColumn('execution_number', id.type, id.build)
      .addColumn('job_id', 'text', (c) => c.notNull().references('deployments.id').onDelete('cascade'))
      .addColumn('thing', 'text', (c) => c.notNull())
      .addColumn('retry', 'integer', (c) => c.notNull().defaultTo(0))
      .addColumn('artifact', 'text', (c) => c.references('artifacts.sha256'))
      .addColumn('fit', 'text')
      .addColumn('status', 'text', (c) => c.notNull())
      .addColumn('status_details_json', 'text', (c) => c.notNull())
      .addColumn('version_number', 'integer', (c) => c.notNull())
      .addColumn('queued_ms', MS, (c) => c.notNull())
      .addColumn('started_ms', MS)
      .addColumn('last_updated_ms', MS, (c) => c.notNull())
      .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
      .addColumn('wave', 'integer')
      .addColumn('previous_version', 'text')
      .addColumn('deadline_ms', MS)
      .addColumn('step_deadline_ms', MS)
      .addUniqueConstraint('executions_job_thing_retry', ['job_id', 'thing', 'retry'])
      .execute();
    await db.schema.createIndex('executions_thing_status').on('executions').columns(['thing', 'status']).execute();
    await db.schema
      .createIndex('executions_status_deadline')
      .on('executions')
      .columns(['status', 'deadline_ms'])
      .execute();
    await db.schema
      .createTable('events')
      .addColumn('id', id.type, id.build)
      .addColumn('at_ms', MS, (c) => c.notNull())
      .addColumn('type', 'text', (c) => c.notNull())
      .addColumn('deployment_id', 'text')
      .addColumn('thing', 'text')
      .addColumn('data_json', 'text', (c) => c.notNull())
      .execute();
    await db.schema.createIndex('events_deployment').on('events').columns(['deployment_id', 'id']).execute();
  },
};
