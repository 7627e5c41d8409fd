import { createHash, timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { OutpostError, fromFsError, type ErrorCode } from '../../errors.js';
import { HttpError } from './status.js';

/** The protection space named in challenges (RFC 9110 §11.6.1); one server, one realm. */
const REALM = 'outpost';
/** `Authorization: Bearer <token>` (RFC 6750 §2.1); the scheme is case-insensitive (RFC 9110 §11.1). */
const BEARER = /^bearer +([A-Za-z0-9\-._~+/]+=*) *$/i;

function digest(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

/**
 * An optional bearer token in front of the server. The presented token is compared by its SHA-256 against the
 * expected token's, with `timingSafeEqual`: the time taken says nothing about how much of it matched, nor about its
 * length. Failures are 401 with a `WWW-Authenticate: Bearer` challenge (RFC 6750 §3), `error="invalid_token"`
 * when a token was presented and is wrong.
 */
export class BearerAuth {
  private readonly expected: Buffer;

  constructor(token: string) {
    if (!BEARER.test(`Bearer ${token}`)) {
      throw new OutpostError(
        'INVALID_ARGUMENT',
        'the server token must be one non-empty word of letters, digits and -._~+/ (RFC 6750 b64token)',
      );
    }
    this.expected = digest(token);
  }

  /** Throws 401 unless `header` carries the token. */
  check(header: string | undefined): void {
    const presented = header === undefined ? undefined : BEARER.exec(header)?.[1];
    if (presented === undefined) {
      throw new HttpError(401, 'this server needs "Authorization: Bearer <token>"', 'UNAUTHORIZED', {
        'www-authenticate': `Bearer realm="${REALM}"`,
      });
    }
    if (!timingSafeEqual(digest(presented), this.expected)) {
      throw new HttpError(401, 'the bearer token is not valid for this server', 'UNAUTHORIZED', {
        'www-authenticate': `Bearer realm="${REALM}", error="invalid_token"`,
      });
    }
  }
}

/**
 * A bearer token kept in a file (not on a command line, where `ps` shows it): its first line, trimmed. An empty
 * file is `code` (the caller's: a flag's INVALID_ARGUMENT, a config's CONFIG_INVALID).
 */
export async function readTokenFile(path: string, code: ErrorCode = 'INVALID_ARGUMENT'): Promise<string> {
  const text = await readFile(path, 'utf8').catch((error: unknown) => {
    throw fromFsError(error, path, 'read');
  });
  const token = text.split(/\r?\n/)[0]?.trim() ?? '';
  if (token === '') throw new OutpostError(code, `the token file ${path} is empty`);
  return token;
}
