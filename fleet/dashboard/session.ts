import type { IncomingMessage } from 'node:http';
import { HttpError } from '../../runtime/server/http/index.js';

/**
 * The dashboard's session: the API's own bearer token, kept by the browser in a cookie the page's script cannot read
 * (`HttpOnly`) and that no other site's request carries (`SameSite=Strict`, RFC 6265bis §5.4.7). A cookie-carried
 * token is checked by the same BearerAuth as the header. A state-changing request authenticated by the cookie must
 * also come from this origin: `Sec-Fetch-Site: same-origin` (Fetch Metadata), or else an `Origin` equal to this
 * server's (RFC 6454 §7); neither header is refused, since a browser always sends one of them on a POST.
 */
export const COOKIE = 'outpost_token';
export const MAX_FORM_BYTES = 4 * 1024; // bytes of a login or cancel form

export function cookieToken(req: IncomingMessage): string | undefined {
  const header = req.headers.cookie;
  if (header === undefined) return undefined;
  for (const part of header.split(';')) {
    const [name, ...rest] = part.trim().split('=');
    if (name === COOKIE) return decodeURIComponent(rest.join('='));
  }
  return undefined;
}

export function sessionCookie(token: string): string {
  return `${COOKIE}=${encodeURIComponent(token)}; Path=/; HttpOnly; SameSite=Strict`;
}

export function clearedCookie(): string {
  return `${COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0`;
}

/** The Authorization header to check: the request's own, else the cookie's token as a bearer. */
export function authorizationOf(req: IncomingMessage): { header: string | undefined; fromCookie: boolean } {
  if (req.headers.authorization !== undefined) return { header: req.headers.authorization, fromCookie: false };
  const token = cookieToken(req);
  return token === undefined
    ? { header: undefined, fromCookie: false }
    : { header: `Bearer ${token}`, fromCookie: true };
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

export function isSafeMethod(method: string | undefined): boolean {
  return SAFE_METHODS.has(method ?? 'GET');
}

/** Throws 403 unless the request comes from a page of this server. */
export function checkSameOrigin(req: IncomingMessage): void {
  const site = req.headers['sec-fetch-site'];
  if (site !== undefined) {
    if (site === 'same-origin') return;
    throw new HttpError(403, `a cross-site request (Sec-Fetch-Site: ${site}) may not change anything`, 'FORBIDDEN');
  }
  const origin = req.headers.origin;
  const host = req.headers.host;
  if (origin !== undefined && host !== undefined && (origin === `http://${host}` || origin === `https://${host}`))
    return;
  throw new HttpError(
    403,
    origin === undefined
      ? 'a state-changing request needs an Origin or Sec-Fetch-Site header from this server'
      : `the origin ${origin} is not this server's`,
    'FORBIDDEN',
  );
}

/** An `application/x-www-form-urlencoded` body, bounded. */
export async function readForm(req: IncomingMessage): Promise<URLSearchParams> {
  const type = req.headers['content-type'] ?? '';
  if (!type.startsWith('application/x-www-form-urlencoded'))
    throw new HttpError(415, 'a form is sent as application/x-www-form-urlencoded', 'UNSUPPORTED_MEDIA_TYPE');
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_FORM_BYTES) throw new HttpError(413, `the form is over ${MAX_FORM_BYTES} bytes`, 'BODY_TOO_LARGE');
    chunks.push(chunk);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

/** Where to go after logging in: a path of this server only (no `//host`, no scheme), else the fleet page. */
export function safeNext(next: string | null): string {
  return next !== null && /^\/(?![/\\])[^\s]*$/.test(next) ? next : '/';
}
