import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import { logger } from '../../runtime/log.js';
import type { Database } from './schema.js';

const log = logger('fleet.store');

/**
 * PostgreSQL through node-postgres' pool. int8 (bigint: times, ids, counts) is parsed as a JavaScript number on this
 * pool only (not pg's global parsers): every value the fleet stores stays below 2^53.
 */
export interface PostgresOptions {
  readonly url: string;
  readonly maxConnections?: number; // default 10
  readonly connectTimeoutMs?: number; // milliseconds, default 5 s
}

const INT8_OID = 20;

const parseInt8 = (value: string): number => Number(value);

/** pg's own parsers, except int8 → number. */
const typeParser: typeof pg.types.getTypeParser = (oid, format): unknown =>
  (oid as number) === INT8_OID ? parseInt8 : pg.types.getTypeParser(oid, format);

export function openPostgres(options: PostgresOptions): Kysely<Database> {
  const pool = new pg.Pool({
    connectionString: options.url,
    max: options.maxConnections ?? 10,
    connectionTimeoutMillis: options.connectTimeoutMs ?? 5_000,
    types: { getTypeParser: typeParser },
  });
  // An idle client whose server went away: logged; the next query gets a fresh connection or a typed error.
  pool.on('error', (error) => log.warn({ err: error }, 'idle database connection failed'));
  return new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
}

/** The URL without its password, for logs and messages. */
export function redactPostgresUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password !== '') parsed.password = '***';
    return parsed.toString();
  } catch {
    return 'postgres://(unparseable URL)';
  }
}
