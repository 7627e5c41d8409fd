import { registry } from './001-registry.js';
import { deployments } from './002-deployments.js';
import { workers } from './003-workers.js';
import { rollouts } from './004-rollouts.js';
import { drift } from './005-drift.js';
import { serving } from './006-serving.js';
import { deliveryFiles } from './007-delivery-files.js';
import { thingsSeen } from './008-things-seen.js';
import type { Migration } from './types.js';

export type { Dialect, Migration } from './types.js';

/** Every migration, in order; versions are 1, 2, … with no gaps (test/fleet/store/migrations.test.ts checks). */
export const MIGRATIONS: readonly Migration[] = Object.freeze([
  registry,
  deployments,
  workers,
  rollouts,
  drift,
  serving,
  deliveryFiles,
  thingsSeen,
]);

/** The schema version this code reads and writes. */
export const SCHEMA_VERSION = MIGRATIONS.length;
