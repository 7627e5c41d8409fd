import type { Migration } from './types.js';

/**
 * An index for the dashboard's live feed (`thingsSeenAfter`: things whose last status came after a time, oldest
 * first, and the newest last-seen time of all), which scanned the whole registry every 5 s. `(last_seen_ms, name)`
 * answers the range in its order, the tie on name included, without reading the rows, and `max(last_seen_ms)` from
 * its end.
 */
export const thingsSeen: Migration = {
  version: 8,
  name: 'things-seen',
  async up(db) {
    await db.schema.createIndex('things_last_seen').on('things').columns(['last_seen_ms', 'name']).execute();
  },
};
