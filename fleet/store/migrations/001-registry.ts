import type { Migration } from './types.js';
import { MS } from './types.js';

/** The registry: things (what each device reports, plus operator attributes), groups, and verified artifacts. */
export const registry: Migration = {
  version: 1,
  name: 'registry',
  async up(db) {
    await db.schema
      .createTable('things')
      .addColumn('name', 'text', (c) => c.primaryKey())
      .addColumn('connected', 'integer', (c) => c.notNull().defaultTo(0))
      .addColumn('first_seen_ms', MS, (c) => c.notNull())
      .addColumn('last_seen_ms', MS, (c) => c.notNull())
      .addColumn('profile', 'text')
      .addColumn('cpu_profile', 'text')
      .addColumn('arch', 'text')
      .addColumn('agent_version', 'text')
      .addColumn('ort_version', 'text')
      .addColumn('models_json', 'text', (c) => c.notNull().defaultTo('[]'))
      .addColumn('health_json', 'text', (c) => c.notNull().defaultTo('[]'))
      .addColumn('attributes_json', 'text', (c) => c.notNull().defaultTo('{}'))
      .addColumn('updated_ms', MS, (c) => c.notNull())
      .execute();
    await db.schema
      .createTable('groups')
      .addColumn('name', 'text', (c) => c.primaryKey())
      .addColumn('kind', 'text', (c) => c.notNull())
      .addColumn('where_json', 'text')
      .addColumn('created_ms', MS, (c) => c.notNull())
      .execute();
    await db.schema
      .createTable('group_members')
      .addColumn('group_name', 'text', (c) => c.notNull().references('groups.name').onDelete('cascade'))
      .addColumn('thing_name', 'text', (c) => c.notNull())
      .addPrimaryKeyConstraint('group_members_pk', ['group_name', 'thing_name'])
      .execute();
    await db.schema
      .createTable('artifacts')
      .addColumn('sha256', 'text', (c) => c.primaryKey())
      .addColumn('name', 'text', (c) => c.notNull())
      .addColumn('version', 'text', (c) => c.notNull())
      .addColumn('target_profile', 'text', (c) => c.notNull())
      .addColumn('target_arch', 'text', (c) => c.notNull())
      .addColumn('bytes', MS, (c) => c.notNull())
      .addColumn('block_size', 'integer', (c) => c.notNull())
      .addColumn('stream_id', 'text', (c) => c.notNull().unique())
      .addColumn('stream_version', 'integer', (c) => c.notNull())
      .addColumn('files_json', 'text', (c) => c.notNull())
      .addColumn('created_ms', MS, (c) => c.notNull())
      .execute();
  },
};
