import { request, type Agent, type IncomingHttpHeaders } from 'node:http';
import { connect, type Socket } from 'node:net';
import { vi } from 'vitest';
import { InferenceServer, type ServerOptions } from '../../runtime/server/http/server.js';

/** Per-request ceiling in tests: a hang fails the test instead of stalling the run. */
export const REQUEST_TIMEOUT_MS = 10_000;

export interface Reply {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
}

export interface CallOptions {
  readonly method?: string;
  readonly headers?: Readonly<Record<string, string | number>>;
  readonly body?: Uint8Array | string;
  readonly agent?: Agent;
}

/** Where a server listens: `http://host:port` or `unix:/path`. */
function endpoint(url: string): { socketPath: string } | { host: string; port: number } {
  if (url.startsWith('unix:')) return { socketPath: url.slice('unix:'.length) };
  const { hostname, port } = new URL(url);
  return { host: hostname, port: Number(port) };
}

/** One HTTP exchange with node:http (binary bodies, any header, unix sockets), the whole reply buffered. */
export function call(url: string, path: string, options: CallOptions = {}): Promise<Reply> {
  const body = options.body ?? '';
  return new Promise((resolve, reject) => {
    const req = request(
      {
        ...endpoint(url),
        path,
        method: options.method ?? (options.body === undefined ? 'GET' : 'POST'),
        headers: { 'content-length': Buffer.byteLength(body), ...options.headers },
        agent: options.agent,
        timeout: REQUEST_TIMEOUT_MS,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }),
        );
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no reply to ${path} within ${REQUEST_TIMEOUT_MS} ms`)));
    req.on('error', reject);
    req.end(body);
  });
}

export function json(reply: Reply): Record<string, unknown> {
  return JSON.parse(reply.body.toString('utf8')) as Record<string, unknown>;
}

/** An inference response body; the tests check its fields, so the cast only names what they expect. */
export function inferReply(reply: Reply): InferReply {
  return JSON.parse(reply.body.toString('utf8')) as InferReply;
}

export interface OutputJson {
  name: string;
  datatype: string;
  shape: number[];
  data?: (number | string | boolean)[];
  parameters?: { binary_data_size?: number };
}

export interface InferReply {
  model_name: string;
  model_version: string;
  id?: string;
  outputs: OutputJson[];
}

/** A binary-extension body: the JSON header, then each part's bytes, and the headers that describe them. */
export function binaryBody(
  header: unknown,
  parts: readonly Uint8Array[],
): { body: Buffer; headers: Record<string, string | number> } {
  const json = Buffer.from(JSON.stringify(header));
  return {
    body: Buffer.concat([json, ...parts]),
    headers: { 'content-type': 'application/octet-stream', 'inference-header-content-length': json.length },
  };
}

/** An inference reply, JSON or binary: the header object and each binary output's bytes by name. */
export function decodeInfer(reply: Reply): { header: InferReply; binary: Map<string, Buffer> } {
  const length = reply.headers['inference-header-content-length'];
  if (length === undefined) return { header: inferReply(reply), binary: new Map() };
  const headerLength = Number(length);
  const header = JSON.parse(reply.body.subarray(0, headerLength).toString('utf8')) as InferReply;
  const binary = new Map<string, Buffer>();
  let offset = headerLength;
  for (const output of header.outputs) {
    const size = output.parameters?.binary_data_size;
    if (size === undefined) continue;
    binary.set(output.name, reply.body.subarray(offset, offset + size));
    offset += size;
  }
  if (offset !== reply.body.length) throw new Error(`binary reply has ${reply.body.length - offset} stray bytes`);
  return { header, binary };
}

/** Bytes of a typed array (little-endian host), for binary request parts. */
export function bytesOf(data: ArrayBufferView): Buffer {
  return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}

/** BYTES elements as the extension frames them: 4-byte little-endian length, then the bytes. */
export function bytesElements(elements: readonly (string | Uint8Array)[]): Buffer {
  return Buffer.concat(
    elements.flatMap((e) => {
      const bytes = typeof e === 'string' ? Buffer.from(e, 'utf8') : Buffer.from(e);
      const length = Buffer.alloc(4);
      length.writeUInt32LE(bytes.length);
      return [length, bytes];
    }),
  );
}

/** A raw TCP (or unix socket) connection, for clients no HTTP library would be: slow, rude, or malformed. */
export function rawSocket(url: string): Promise<Socket> {
  const where = endpoint(url);
  return new Promise((resolve, reject) => {
    const socket = 'socketPath' in where ? connect(where.socketPath) : connect(where.port, where.host);
    socket.once('connect', () => resolve(socket));
    socket.once('error', reject);
  });
}

/** Everything the server sends on `socket` until it closes the connection (or the time is up). */
export function readUntilClose(socket: Socket, timeoutMs = REQUEST_TIMEOUT_MS): Promise<string> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const done = () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks).toString('latin1'));
    };
    const timer = setTimeout(() => {
      socket.destroy();
    }, timeoutMs);
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', () => undefined); // a reset after the reply is fine; the reply is what is checked
    socket.once('close', done);
  });
}

/** Status code of a raw HTTP/1.1 reply. */
export function rawStatus(text: string): number {
  return Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? NaN);
}

/** Starts a server on a free loopback port (or the given socket); `stop` closes it. */
export async function startServer(options: ServerOptions): Promise<{ server: InferenceServer; url: string }> {
  const server = new InferenceServer({ port: 0, ...options });
  const { url } = await server.listen();
  return { server, url };
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Between checks while a test waits for the server to reach a state. */
export const POLL_MS = 5; // ms

/**
 * Waits until `check()` holds (`vi.waitFor`); a state never reached fails the test naming it (after
 * REQUEST_TIMEOUT_MS).
 */
export async function until(check: () => boolean, what: string): Promise<void> {
  await vi.waitFor(
    () => {
      if (!check()) throw new Error(`timed out waiting for ${what}`);
    },
    { timeout: REQUEST_TIMEOUT_MS, interval: POLL_MS },
  );
}

/** Writes a raw HTTP request head (CRLF line ends); `body` follows it in the same write. */
export function head(lines: readonly string[], body = ''): string {
  return `${lines.join('\r\n')}\r\n\r\n${body}`;
}

/** The JSON body of a raw HTTP/1.1 reply (after the blank line). */
export function rawJson(text: string): Record<string, unknown> {
  const start = text.indexOf('\r\n\r\n');
  return JSON.parse(text.slice(start + 4)) as Record<string, unknown>;
}
