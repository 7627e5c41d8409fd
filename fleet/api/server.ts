import { type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { OutpostError } from '../../runtime/errors.js';
import { logger } from '../../runtime/log.js';
import { BearerAuth, HttpError } from '../../runtime/server/http/index.js';
import {
  Dashboard,
  type DashboardOptions,
  authorizationOf,
  checkSameOrigin,
  isSafeMethod,
} from '../dashboard/index.js';
import { sendError, sendJson } from './http.js';
import { type ApiContext, route } from './routes.js';

const log = logger('fleet.api');

/**
 * The operator's HTTP JSON API (what `outpost fleet …` calls), on loopback by default, behind the bearer token from
 * `--token-file` (the same check as `outpost serve`, runtime/server/http/auth.ts). Every answer is JSON, errors as
 * `{ "error": { "code", "message", "details" } }` with the OutpostError code.
 */
export interface ApiServerOptions {
  readonly host?: string; // default 127.0.0.1
  readonly port?: number; // default 8090; 0 picks a free one
  readonly token?: string;
  /** The dashboard's live feed and script (tests shorten the feed's interval). */
  readonly dashboard?: Omit<DashboardOptions, 'auth'>;
}

export const DEFAULT_API_PORT = 8090;

export class ApiServer {
  private readonly server: Server;
  private readonly auth: BearerAuth | undefined;
  readonly dashboard: Dashboard;

  constructor(
    private readonly ctx: ApiContext,
    private readonly options: ApiServerOptions = {},
  ) {
    this.auth = options.token === undefined ? undefined : new BearerAuth(options.token);
    this.dashboard = new Dashboard(ctx, {
      ...options.dashboard,
      ...(this.auth === undefined ? {} : { auth: this.auth }),
    });
    this.server = createServer((req, res) => {
      const url = new URL(req.url ?? '/', 'http://localhost');
      // The dashboard's pages and files (fleet/dashboard/): they send to the login form rather than answer 401.
      if (Dashboard.owns(url.pathname)) {
        void this.dashboard.handle(req, res, url);
        return;
      }
      void (async () => {
        try {
          // The header, or the dashboard's cookie; a cookie alone may change something only from this origin.
          const { header, fromCookie } = authorizationOf(req);
          this.auth?.check(header);
          if (fromCookie && !isSafeMethod(req.method)) checkSameOrigin(req);
          const found = route(req.method ?? 'GET', url.pathname);
          if (found === undefined) throw new HttpError(404, `no route ${url.pathname}`, 'NOT_FOUND');
          if (found === 'method')
            throw new HttpError(405, `${req.method ?? ''} is not allowed on ${url.pathname}`, 'METHOD_NOT_ALLOWED');
          const [status, body] = await found.handler(this.ctx, req, found.params, url.searchParams);
          sendJson(res, status, body);
        } catch (error) {
          if (!(error instanceof HttpError) && !(error instanceof OutpostError))
            log.error({ err: error, path: url.pathname }, 'api request failed');
          if (!res.headersSent) sendError(res, error);
          else res.destroy();
          req.resume();
        }
      })();
    });
  }

  async listen(): Promise<{ url: string; port: number }> {
    const host = this.options.host ?? '127.0.0.1';
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.options.port ?? DEFAULT_API_PORT, host, () => {
        this.server.off('error', reject);
        resolve();
      });
    }).catch((error: unknown) => {
      throw new OutpostError(
        'INVALID_ARGUMENT',
        `cannot listen on ${host}:${this.options.port ?? DEFAULT_API_PORT}: ${(error as Error).message}`,
        { cause: error },
      );
    });
    const { port } = this.server.address() as AddressInfo;
    const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
    log.info({ url, auth: this.auth !== undefined }, 'fleet API listening');
    return { url, port };
  }

  async close(): Promise<void> {
    this.dashboard.close();
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }
}
