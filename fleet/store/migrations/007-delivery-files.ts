import type { Migration } from './types.js';

/**
 * The files stream layout on the fleet (docs/job-document.md, "Stream layouts"): besides its archive stream, an
 * artifact gets a second stream, the delivery index and one stream file per artifact file, each a blob of its own
 * sha256 (so a device fetches only the variants it will run). `delivery_json` holds that stream's file table and
 * `delivery_stream_id` its id (unique, looked up by the streams server). Artifacts stored before stay NULL: they
 * ship in the archive layout, as they did, until uploaded again.
 */
export const deliveryFiles: Migration = {
  version: 7,
  name: 'delivery-files',
  async up(db) {
    await db.schema.alterTable('artifacts').addColumn('delivery_json', 'text').execute();
    await db.schema.alterTable('artifacts').addColumn('delivery_stream_id', 'text').execute();
    await db.schema
      .createIndex('artifacts_delivery_stream')
      .unique()
      .on('artifacts')
      .column('delivery_stream_id')
      .execute();
  },
};
