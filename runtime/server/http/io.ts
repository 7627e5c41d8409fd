import type { IncomingMessage, ServerResponse } from 'node:http';
import { BINARY_ALIGNMENT } from '../protocol/binary.js';
import { CLOSE_AFTER, HttpError, clientClosed } from './status.js';

/**
 * The HTTP plumbing of the inference server: bounded body reading and response writing that skips clients who
 * left. Nothing here logs: these run on every request.
 */

export function bodyTooLarge(limit: number, declared?: number): HttpError {
  const size = declared === undefined ? 'the body' : `a body of ${declared} bytes`;
  return new HttpError(413, `${size} exceeds the ${limit}-byte limit`, 'BODY_TOO_LARGE');
}

/**
 * Reads a request body of at most `limit` bytes (RFC 9110 §15.5.14: 413 Content Too Large). A declared
 * Content-Length over the limit is refused before a byte is read, a chunked body as soon as it passes the limit;
 * either way the caller answers 413 and closes the connection rather than reading the rest. Memory grows with what
 * actually arrived, not with what was declared. The result is one buffer placed so that its byte `alignAt` (where
 * the binary section starts) is BINARY_ALIGNMENT-aligned: tensors there can be viewed in place. A single chunk that
 * is already so aligned is used as is. A client that disconnects mid-body rejects with CLIENT_CLOSED.
 */
export function readBody(req: IncomingMessage, limit: number, alignAt = 0): Promise<Buffer> {
  const header = req.headers['content-length'];
  const declared = header === undefined ? undefined : Number(header);
  if (declared !== undefined && declared > limit) return Promise.reject(bodyTooLarge(limit, declared));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let received = 0;
    const detach = () => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onGone);
      req.off('close', onGone);
    };
    const onData = (chunk: Buffer) => {
      received += chunk.length;
      if (received > limit) {
        detach();
        req.pause();
        reject(bodyTooLarge(limit));
      } else chunks.push(chunk);
    };
    const onEnd = () => {
      detach();
      const [first] = chunks;
      if (chunks.length === 1 && first !== undefined && (first.byteOffset + alignAt) % BINARY_ALIGNMENT === 0) {
        resolve(first);
        return;
      }
      const pad = (BINARY_ALIGNMENT - (alignAt % BINARY_ALIGNMENT)) % BINARY_ALIGNMENT;
      const body = Buffer.allocUnsafeSlow(pad + received).subarray(pad);
      let offset = 0;
      for (const chunk of chunks) offset += chunk.copy(body, offset);
      resolve(body);
    };
    // 'close' before 'end' (or 'error'): the client went away, or the request timeout destroyed the socket.
    const onGone = () => {
      detach();
      reject(clientClosed());
    };
    req.on('data', onData);
    req.once('end', onEnd);
    req.once('error', onGone);
    req.once('close', onGone);
  });
}

/** Whether anyone is still there to read a response: a client that disconnected gets nothing written. */
export function responseOpen(res: ServerResponse): boolean {
  const socket = res.socket;
  return !res.destroyed && !res.writableEnded && !res.headersSent && socket !== null && !socket.destroyed;
}

function headersFor(status: number, headers: Readonly<Record<string, string | number>>) {
  return CLOSE_AFTER.has(status) ? { ...headers, connection: 'close' } : headers;
}

export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Readonly<Record<string, string>> = {},
): void {
  if (!responseOpen(res)) return;
  const text = JSON.stringify(body);
  res.writeHead(
    status,
    headersFor(status, { ...headers, 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) }),
  );
  res.end(text);
}

export function sendText(res: ServerResponse, status: number, text: string, contentType: string): void {
  if (!responseOpen(res)) return;
  res.writeHead(status, { 'content-type': contentType, 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/** A body in several parts (a JSON header, then tensors' own memory): corked, so it leaves in one write. */
export function sendParts(
  res: ServerResponse,
  status: number,
  headers: Readonly<Record<string, string | number>>,
  parts: readonly Uint8Array[],
): void {
  if (!responseOpen(res)) return;
  let length = 0;
  for (const part of parts) length += part.byteLength;
  res.writeHead(status, { ...headers, 'content-length': length });
  res.cork();
  for (const part of parts) res.write(part);
  res.end();
}
