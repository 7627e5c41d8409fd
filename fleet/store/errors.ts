import { type ErrorCode, OutpostError, isOutpostError, messageOf } from '../../runtime/errors.js';

/**
 * Driver errors (better-sqlite3's SqliteError codes, PostgreSQL SQLSTATEs, Node's socket errors) as the fleet's typed
 * errors. Transient ones (a busy or locked database, a serialisation failure, a lost connection) are retryable;
 * a full disk and everything else are not. A transaction that failed was rolled back whole: no partial writes.
 */
const SQLITE: ReadonlyArray<readonly [RegExp, ErrorCode]> = Object.freeze([
  [/^SQLITE_(BUSY|LOCKED)/, 'STORE_LOCKED'],
  [/^SQLITE_FULL/, 'STORE_FULL'],
  [/^SQLITE_(CANTOPEN|NOTADB|IOERR|READONLY|PERM)/, 'STORE_UNREACHABLE'],
  [/^SQLITE_CONSTRAINT_(PRIMARYKEY|UNIQUE)/, 'ALREADY_EXISTS'],
]);

/** PostgreSQL error codes (Appendix A): class 08 connection exceptions, 53 insufficient resources, 40 rollbacks. */
const POSTGRES: ReadonlyArray<readonly [RegExp, ErrorCode]> = Object.freeze([
  [/^(40001|40P01|55P03)$/, 'STORE_LOCKED'],
  [/^53100$/, 'STORE_FULL'],
  [/^(08...|53300|57P0[123]|3D000|28P01|28000)$/, 'STORE_UNREACHABLE'],
  [/^23505$/, 'ALREADY_EXISTS'],
]);

const NETWORK = /^(ECONNREFUSED|ECONNRESET|ENOTFOUND|ETIMEDOUT|EPIPE|EHOSTUNREACH|EAI_AGAIN)$/;

export function storeError(error: unknown, location: string, operation: string): OutpostError {
  if (isOutpostError(error)) return error;
  const code = (error as { code?: unknown } | undefined)?.code;
  const text = typeof code === 'string' ? code : '';
  const table = text.startsWith('SQLITE_') ? SQLITE : POSTGRES;
  let mapped: ErrorCode = 'STORE_FAILED';
  for (const [pattern, ours] of table) if (pattern.test(text)) mapped = ours;
  if (
    NETWORK.test(text) ||
    /Connection terminated|connect ECONNREFUSED|timeout exceeded when trying to connect/i.test(messageOf(error))
  )
    mapped = 'STORE_UNREACHABLE';
  const hint: Partial<Record<ErrorCode, string>> = {
    STORE_LOCKED: 'the database is busy (another writer holds it); retried',
    STORE_FULL: 'the database is full (disk or size limit): free space, then retry',
    STORE_UNREACHABLE: 'the database cannot be reached',
  };
  return new OutpostError(
    mapped,
    `${operation} on the fleet database at ${location} failed: ${messageOf(error)}${hint[mapped] === undefined ? '' : ` (${hint[mapped]})`}`,
    { cause: error, details: { location, operation, driverCode: text || undefined } },
  );
}
