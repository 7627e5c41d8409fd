import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { logger } from '../log.js';
import { OUTPOST_VERSION } from '../version.js';
import { errorResponse, HttpError } from './errors.js';
import { inferResponse, modelMetadata, parseInferRequest } from './protocol.js';
import type { ServiceRepository } from './repository.js';

const log = logger('server');

export interface ServerOptions {
  readonly repository: ServiceRepository;
  /** Loopback by default: the device's apps are local; nothing listens on the network unless asked. */
  readonly host?: string;
  readonly port?: number;
  /** Listen on a unix socket instead of TCP. */
  readonly socket?: string;
  /** Request bodies above this are refused with 413 before they are read into memory. */
  readonly maxBodyBytes?: number; // bytes
}

export const DEFAULT_MAX_BODY = 64 * 1024 * 1024; // bytes: a 4K RGB float image is ~100 MB; batching raises it

const ROUTE = /^\/v2\/models\/([^/]+)(?:\/versions\/([^/]+))?(?:\/(infer|ready))?$/;

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { ...headers, 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length'] ?? NaN);
  if (declared > limit)
    return Promise.reject(
      new HttpError(413, `body of ${declared} bytes exceeds the ${limit}-byte limit`, 'BODY_TOO_LARGE'),
    );
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        reject(new HttpError(413, `body exceeds the ${limit}-byte limit`, 'BODY_TOO_LARGE'));
        req.destroy();
      } else chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks, size)));
    req.on('error', reject);
  });
}

/**
 * The local inference server: Open Inference Protocol (KServe v2) REST over node:http with keep-alive, one handler
 * per route, no per-request logging. Shared by `outpost serve` and the device agent.
 */
export class InferenceServer {
  private server: Server | undefined;

  constructor(private readonly options: ServerOptions) {}

  async listen(): Promise<{ url: string }> {
    const server = createServer((req, res) => {
      this.handle(req, res).catch((error: unknown) => {
        const { status, body, headers } = errorResponse(error);
        if (!res.headersSent) send(res, status, body, headers);
        else res.destroy();
      });
    });
    server.keepAliveTimeout = 65_000; // ms: longer than typical client pools, so idle sockets are reused
    this.server = server;
    const { socket, host = '127.0.0.1', port = 8080 } = this.options;
    if (socket !== undefined) await rm(socket, { force: true });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      if (socket !== undefined) server.listen(socket, resolve);
      else server.listen(port, host, resolve);
    });
    const address = server.address();
    const url = typeof address === 'string' ? `unix:${address}` : `http://${host}:${(address as AddressInfo).port}`;
    log.info({ url }, 'inference server listening');
    return { url };
  }

  async close(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (server === undefined) return;
    server.closeIdleConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const [status, body] = await this.route(req);
    send(res, status, body);
  }

  /** One response per route: [HTTP status, JSON body]. */
  private async route(req: IncomingMessage): Promise<[number, unknown]> {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    const { repository } = this.options;
    if (req.method === 'GET' && path === '/v2/health/live') return [200, { live: true }];
    if (req.method === 'GET' && path === '/v2/health/ready') {
      const ready = repository.services().some((s) => s.versions().some((m) => !m.released));
      return [ready ? 200 : 503, { ready }];
    }
    if (req.method === 'GET' && (path === '/v2' || path === '/v2/')) {
      return [200, { name: 'outpost', version: OUTPOST_VERSION, extensions: [] }];
    }
    const match = ROUTE.exec(path);
    if (match === null) throw new HttpError(404, `no route ${req.method ?? ''} ${path}`, 'NOT_FOUND');
    const [, rawName, rawVersion, action] = match;
    const name = decodeURIComponent(rawName ?? '');
    const version = rawVersion === undefined ? undefined : decodeURIComponent(rawVersion);
    const service = repository.service(name);
    const model = service?.select(version);
    if (service === undefined || model === undefined) {
      const known = repository.services().map((s) => s.name);
      throw new HttpError(
        404,
        `unknown model "${name}"${version === undefined ? '' : ` version "${version}"`}; serving: ${known.join(', ') || 'none'}`,
        'MODEL_NOT_FOUND',
      );
    }
    if (action === 'infer') {
      if (req.method !== 'POST') throw new HttpError(405, 'infer takes POST', 'METHOD_NOT_ALLOWED');
      const raw = await readBody(req, this.options.maxBodyBytes ?? DEFAULT_MAX_BODY);
      let body: unknown;
      try {
        body = JSON.parse(raw.toString('utf8'));
      } catch {
        throw new HttpError(400, 'request body is not valid JSON', 'INPUT_INVALID');
      }
      const request = parseInferRequest(body, model);
      const result = await service.infer(request.inputs, version);
      return [200, inferResponse(result.model, request, result.outputs)];
    }
    if (req.method !== 'GET') throw new HttpError(405, `${path} takes GET`, 'METHOD_NOT_ALLOWED');
    if (action === 'ready') return [model.released ? 503 : 200, { name: model.name, ready: !model.released }];
    return [
      200,
      modelMetadata(
        model,
        service.versions().map((m) => m.version),
      ),
    ];
  }
}
