import { createServer, STATUS_CODES, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { lstat, rm } from 'node:fs/promises';
import { connect, type AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { OutpostError } from '../../errors.js';
import { logger } from '../../log.js';
import { OUTPOST_VERSION } from '../../version.js';
import { BearerAuth } from './auth.js';
import { BINARY_EXTENSION } from '../protocol/binary.js';
import { CLIENT_CLOSED_STATUS, errorResponse, HttpError } from './status.js';
import { responseOpen, sendJson, sendText } from './io.js';
import { handleInfer } from './infer.js';
import { handlePipelineInfer, pipelineMetadata } from './pipeline.js';
import { serviceOf, type PipelineEndpoints, type PipelineService } from '../serving/pipeline-service.js';
import type { Pipeline } from '../../pipeline/index.js';
import type { PipelineMetrics } from '../metrics/pipelines.js';
import { servingPipeline } from '../serving/pipeline.js';
import { modelMetadata } from '../protocol/request.js';
import { DEFAULT_MAX_RESPONSE } from '../protocol/response.js';
import type { ServiceRepository } from '../serving/model-repository.js';

const log = logger('server');

/** How long a client may take; Node answers 408 itself when the request timeout passes (clientError below). */
export interface ServerTimeouts {
  /** To receive a request's headers: slowloris protection. At most `requestMs` (Node refuses more). */
  readonly headersMs: number;
  /** To receive a whole request, headers and body; the time inference takes after that does not count. */
  readonly requestMs: number;
  /** An idle keep-alive connection is kept this long. */
  readonly keepAliveMs: number;
  /** How often Node sweeps connections for the two timeouts above: a timeout fires up to this late. */
  readonly checkIntervalMs: number;
  /** On close(): how long in-flight requests may finish before their connections are cut. */
  readonly closeGraceMs: number;
}

export const DEFAULT_TIMEOUTS: ServerTimeouts = Object.freeze({
  headersMs: 10_000, // ms: a local client sends its headers at once
  requestMs: 30_000, // ms: the 64 MiB body limit at ~2 MB/s; on loopback far less
  keepAliveMs: 65_000, // ms: longer than typical client pools' idle timeout, so idle sockets are reused
  checkIntervalMs: 1_000, // ms: Node's default (30 s) would let a timeout overrun by that much
  closeGraceMs: 5_000, // ms
});

export interface ServerOptions {
  readonly repository: ServiceRepository;
  /** Loopback by default: the device's apps are local; nothing listens on the network unless asked. */
  readonly host?: string;
  readonly port?: number;
  /** Listen on a unix socket instead of TCP. */
  readonly socket?: string;
  /** Request bodies above this are refused with 413 before they are read into memory. */
  readonly maxBodyBytes?: number; // bytes
  /** Answers above this are refused with 400 RESPONSE_TOO_LARGE, never encoded whole (../protocol/response.ts). */
  readonly maxResponseBytes?: number; // bytes
  /** When set, every route but the health checks needs `Authorization: Bearer <token>` (auth.ts). */
  readonly token?: string;
  /** Prometheus text exposition for `GET /metrics`; the route is absent without it. */
  readonly metrics?: () => Promise<string>;
  /** Pipelines served beside the models (`POST /v2/models/{pipeline}/infer`), and where their step times go. */
  readonly pipelines?: PipelineEndpoints;
  readonly pipelineMetrics?: PipelineMetrics;
  readonly timeouts?: Partial<ServerTimeouts>;
}

export const DEFAULT_MAX_BODY = 64 * 1024 * 1024; // bytes: a 4K RGB float image is ~100 MB; batching raises it

/** Prometheus text format 0.0.4 (https://prometheus.io/docs/instrumenting/exposition_formats/). */
const METRICS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

const ROUTE = /^\/v2\/models\/([^/]+)(?:\/versions\/([^/]+))?(?:\/(infer|ready))?$/;
/** Open Inference Protocol health APIs: server live/ready and model ready, open even when a token is set. */
const HEALTH = /^\/v2\/(?:health\/(?:live|ready)|models\/[^/]+(?:\/versions\/[^/]+)?\/ready)$/;

function decode(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new HttpError(400, `"${segment}" is not a valid percent-encoded path segment`, 'BAD_REQUEST');
  }
}

/**
 * The local inference server: Open Inference Protocol (KServe v2) REST over node:http with keep-alive, JSON and
 * binary tensors, image bodies for models with image pipelines; one handler per route, no per-request logging.
 * Shared by `outpost serve` and the device agent. README.md has the endpoints, limits and the request path.
 */
export class InferenceServer {
  private server: Server | undefined;
  private readonly auth: BearerAuth | undefined;
  private readonly timeouts: ServerTimeouts;
  /** The response last started on each connection, so a client error knows whether a response is half-written. */
  private readonly current = new WeakMap<Duplex, ServerResponse>();
  /** Requests being handled, so that close() can tell them to end their connections. */
  private readonly handling = new Set<ServerResponse>();
  private closing = false;

  constructor(private readonly options: ServerOptions) {
    this.auth = options.token === undefined ? undefined : new BearerAuth(options.token);
    this.timeouts = { ...DEFAULT_TIMEOUTS, ...options.timeouts };
  }

  /** Requests being handled (body, inference, response): back to 0 once every request is answered or abandoned. */
  get inFlight(): number {
    return this.handling.size;
  }

  async listen(): Promise<{ url: string }> {
    const { headersMs, requestMs, keepAliveMs, checkIntervalMs } = this.timeouts;
    this.closing = false;
    const server = createServer(
      {
        headersTimeout: Math.min(headersMs, requestMs),
        requestTimeout: requestMs,
        keepAliveTimeout: keepAliveMs,
        connectionsCheckingInterval: checkIntervalMs,
      },
      (req, res) => {
        this.current.set(req.socket, res);
        this.handling.add(res);
        if (this.closing) res.setHeader('connection', 'close');
        this.handle(req, res).then(
          () => this.handling.delete(res),
          (error: unknown) => {
            this.handling.delete(res);
            this.fail(res, error);
          },
        );
      },
    );
    server.on('clientError', this.onClientError);
    this.server = server;
    const { socket, host = '127.0.0.1', port = 8080 } = this.options;
    if (socket !== undefined) await removeStaleSocket(socket);
    await new Promise<void>((resolve, reject) => {
      const failed = (error: Error) => {
        this.server = undefined;
        const where = socket ?? `${host}:${port}`;
        reject(new OutpostError('INVALID_ARGUMENT', `cannot listen on ${where}: ${error.message}`, { cause: error }));
      };
      const listening = () => {
        server.off('error', failed);
        resolve();
      };
      server.once('error', failed);
      if (socket !== undefined) server.listen(socket, listening);
      else server.listen(port, host, listening);
    });
    const address = server.address();
    const url = typeof address === 'string' ? `unix:${address}` : `http://${host}:${(address as AddressInfo).port}`;
    log.info({ url, auth: this.auth !== undefined }, 'inference server listening');
    return { url };
  }

  /**
   * Stops accepting, lets in-flight requests finish (up to closeGraceMs), then cuts what is left. Their answers
   * (and those of requests still arriving on open keep-alive connections) say `connection: close`, so each
   * connection ends with its last answer instead of idling until the grace period is over.
   */
  async close(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (server === undefined) return;
    this.closing = true;
    for (const res of this.handling) if (!res.headersSent) res.setHeader('connection', 'close');
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeIdleConnections();
    const grace = setTimeout(() => server.closeAllConnections(), this.timeouts.closeGraceMs);
    await closed;
    clearTimeout(grace);
  }

  private fail(res: ServerResponse, error: unknown): void {
    const { status, body, headers } = errorResponse(error);
    if (status === CLIENT_CLOSED_STATUS) return;
    if (responseOpen(res)) sendJson(res, status, body, headers);
    else if (!res.writableEnded) res.destroy(); // a half-written response cannot be turned into an error
  }

  /**
   * Errors Node's HTTP parser meets before a request reaches `handle`: malformed requests (400), headers too large
   * (431), and the request timeout (408). Answered in the same JSON shape as every other error, then the
   * connection is closed, as Node's default handler would.
   */
  private readonly onClientError = (error: NodeJS.ErrnoException, socket: Duplex): void => {
    const inFlight = this.current.get(socket);
    const halfWritten = inFlight !== undefined && inFlight.headersSent && !inFlight.writableFinished;
    if (socket.writable && !halfWritten && error.code !== 'ECONNRESET') {
      const [status, code, message] =
        error.code === 'ERR_HTTP_REQUEST_TIMEOUT'
          ? [408, 'REQUEST_TIMEOUT', this.timeoutMessage()]
          : error.code === 'HPE_HEADER_OVERFLOW'
            ? [431, 'HEADERS_TOO_LARGE', 'the request headers are too large']
            : [400, 'BAD_REQUEST', `malformed HTTP request (${error.code ?? error.message})`];
      const text = JSON.stringify({ error: message, code });
      socket.write(
        `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\ncontent-type: application/json\r\n` +
          `content-length: ${Buffer.byteLength(text)}\r\nconnection: close\r\n\r\n${text}`,
      );
    }
    socket.destroy();
  };

  /** Node reports both timeouts with one code; the message names both limits. */
  private timeoutMessage(): string {
    const { headersMs, requestMs } = this.timeouts;
    return `the request did not arrive in time (headers within ${Math.min(headersMs, requestMs)} ms, the whole request within ${requestMs} ms)`;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    const { repository } = this.options;
    if (req.method === 'GET' && path === '/v2/health/live') {
      sendJson(res, 200, { live: true });
      return;
    }
    if (req.method === 'GET' && path === '/v2/health/ready') {
      const ready =
        repository.services().some((s) => s.versions().some((m) => !m.released)) ||
        (this.options.pipelines?.names().length ?? 0) > 0;
      sendJson(res, ready ? 200 : 503, { ready });
      return;
    }
    if (!HEALTH.test(path)) this.auth?.check(req.headers.authorization);
    if (req.method === 'GET' && path === '/metrics' && this.options.metrics !== undefined) {
      sendText(res, 200, await this.options.metrics(), METRICS_CONTENT_TYPE);
      return;
    }
    if (req.method === 'GET' && (path === '/v2' || path === '/v2/')) {
      sendJson(res, 200, { name: 'outpost', version: OUTPOST_VERSION, extensions: [BINARY_EXTENSION] });
      return;
    }
    const match = ROUTE.exec(path);
    if (match === null) throw new HttpError(404, `no route ${req.method ?? ''} ${path}`, 'NOT_FOUND');
    const [, rawName = '', rawVersion, action] = match;
    const name = decode(rawName);
    const version = rawVersion === undefined ? undefined : decode(rawVersion);
    const found = this.options.pipelines?.get(name);
    if (found !== undefined) {
      const pipelines = serviceOf(found);
      const pipeline = pipelines.select(version);
      if (pipeline === undefined) {
        const versions = pipelines.versions().map((p) => p.version);
        throw new HttpError(
          404,
          `pipeline "${name}" has no version "${version ?? ''}"; versions: ${versions.join(', ') || 'none'}`,
          'MODEL_NOT_FOUND',
        );
      }
      await this.handlePipeline(req, res, { service: pipelines, pipeline, named: version !== undefined }, action);
      return;
    }
    const service = repository.service(name);
    const model = service?.select(version);
    if (service === undefined || model === undefined) throw notFound(repository, name, version);
    if (action === 'infer') {
      if (req.method !== 'POST') throw new HttpError(405, 'infer takes POST', 'METHOD_NOT_ALLOWED');
      const maxBodyBytes = this.options.maxBodyBytes ?? DEFAULT_MAX_BODY;
      const maxResponseBytes = this.options.maxResponseBytes ?? DEFAULT_MAX_RESPONSE;
      await handleInfer(req, res, { service, model, version, maxBodyBytes, maxResponseBytes });
      return;
    }
    if (req.method !== 'GET') throw new HttpError(405, `${path} takes GET`, 'METHOD_NOT_ALLOWED');
    if (action === 'ready') {
      sendJson(res, model.released ? 503 : 200, { name: model.name, ready: !model.released });
      return;
    }
    const versions = service.versions().map((m) => m.version);
    sendJson(res, 200, modelMetadata(model, versions, (await servingPipeline(model)).extraOutputs));
  }

  private async handlePipeline(
    req: IncomingMessage,
    res: ServerResponse,
    target: { service: PipelineService; pipeline: Pipeline; named: boolean },
    action: string | undefined,
  ): Promise<void> {
    const { service, pipeline } = target;
    if (action === 'infer') {
      if (req.method !== 'POST') throw new HttpError(405, 'infer takes POST', 'METHOD_NOT_ALLOWED');
      const maxBodyBytes = this.options.maxBodyBytes ?? DEFAULT_MAX_BODY;
      const maxResponseBytes = this.options.maxResponseBytes ?? DEFAULT_MAX_RESPONSE;
      const metrics = this.options.pipelineMetrics;
      await handlePipelineInfer(req, res, target, {
        maxBodyBytes,
        maxResponseBytes,
        ...(metrics === undefined ? {} : { metrics }),
      });
      return;
    }
    if (req.method !== 'GET') throw new HttpError(405, `${req.url ?? ''} takes GET`, 'METHOD_NOT_ALLOWED');
    if (action === 'ready') sendJson(res, 200, { name: pipeline.name, ready: true });
    else
      sendJson(
        res,
        200,
        pipelineMetadata(
          pipeline,
          service.versions().map((p) => p.version),
        ),
      );
  }
}

/** 404 listing what would have been found: the served models, or the versions of the model named. */
function notFound(repository: ServiceRepository, name: string, version: string | undefined): HttpError {
  const service = repository.service(name);
  if (service !== undefined && version !== undefined) {
    const versions = service.versions().map((m) => m.version);
    return new HttpError(
      404,
      `model "${name}" has no version "${version}"; versions: ${versions.join(', ') || 'none'}`,
      'MODEL_NOT_FOUND',
    );
  }
  const known = repository.services().map((s) => s.name);
  return new HttpError(404, `unknown model "${name}"; serving: ${known.join(', ') || 'none'}`, 'MODEL_NOT_FOUND');
}

/** Whether something accepts connections on the unix socket at `path` (a stale socket refuses them). */
function accepting(path: string): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const probe = connect(path);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', (error: NodeJS.ErrnoException) => {
      if (error.code === 'ECONNREFUSED') resolve(false);
      else reject(new OutpostError('INVALID_ARGUMENT', `cannot check the socket ${path}: ${error.message}`));
    });
  });
}

/**
 * A unix socket left by a previous run (one nothing listens on any more) is removed; a socket another server is
 * listening on, and any other file at that path, is not ours to delete.
 */
async function removeStaleSocket(path: string): Promise<void> {
  const info = await lstat(path).catch(() => undefined);
  if (info === undefined) return;
  if (!info.isSocket()) {
    throw new OutpostError('INVALID_ARGUMENT', `${path} exists and is not a unix socket; refusing to replace it`);
  }
  if (await accepting(path)) {
    throw new OutpostError('INVALID_ARGUMENT', `${path} is in use by a running server; refusing to replace it`);
  }
  await rm(path, { force: true });
}
