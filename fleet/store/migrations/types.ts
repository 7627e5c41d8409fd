import type { ColumnDefinitionBuilder, Kysely } from 'kysely';
import type { Database } from '../schema.js';

export type Dialect = 'sqlite' | 'postgres';

/**
 * A numbered, forward-only migration. `up` runs inside one transaction with the row that records it, so a migration
 * is applied entirely or not at all; none is ever edited once released (add a new one instead).
 */
export interface Migration {
  readonly version: number;
  readonly name: string;
  up(db: Kysely<Database>, dialect: Dialect): Promise<void>;
}

/** Milliseconds since the epoch: 64-bit in both engines. */
export const MS = 'bigint';

/** An auto-incrementing 64-bit primary key: identity in PostgreSQL, the rowid alias in SQLite. */
export function idColumn(dialect: Dialect): {
  type: 'bigserial' | 'integer';
  build: (c: ColumnDefinitionBuilder) => ColumnDefinitionBuilder;
} {
  return dialect === 'postgres'
    ? { type: 'bigserial', build: (c) => c.primaryKey() }
    : { type: 'integer', build: (c) => c.primaryKey().autoIncrement() };
}
