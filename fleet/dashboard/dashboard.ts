import type { IncomingMessage, ServerResponse } from 'node:http';
import { OutpostError, isOutpostError, messageOf } from '../../runtime/errors.js';
import { logger } from '../../runtime/log.js';
import { type BearerAuth, HttpError } from '../../runtime/server/http/index.js';
import { statusOf } from '../api/http.js';
import { type ApiContext, describeDeployment } from '../api/routes.js';
import { Assets, SECURITY_HEADERS } from './assets.js';
import { EventFeed, type EventFeedOptions } from './feed.js';
import { type Html, html } from './html.js';
import { page } from './layout.js';
import { loginBody } from './pages/login.js';
import { deviceBody } from './pages/device.js';
import { confirmBody, deploymentBody, deploymentsBody } from './pages/deployments.js';
import { fleetBody, filterThings, readFilter } from './pages/fleet.js';
import {
  authorizationOf,
  checkSameOrigin,
  clearedCookie,
  isSafeMethod,
  readForm,
  safeNext,
  sessionCookie,
} from './session.js';

const log = logger('fleet.dashboard');

/**
 * The fleet dashboard, served by `fleet serve` beside its API: `/` (the fleet), `/ui/things/{name}`,
 * `/ui/deployments[/{id}]`, the login form, the live event stream (`/ui/events`) and the static files. Pages are
 * rendered here from the store, escaped throughout (html.ts); the browser's script only refreshes them when events
 * arrive. See README.md in this folder.
 */
export interface DashboardOptions {
  readonly auth?: BearerAuth;
  readonly feed?: EventFeedOptions;
  /** Where the built live-update script is (default: the package's dist/dashboard/live.js). */
  readonly scriptPath?: string;
}

const RECENT_EVENTS = 500; // events of the log's tail a device page looks through for its own

type Page = { title: string; nav: 'fleet' | 'deployments' | 'none'; body: Html; live?: boolean };

export class Dashboard {
  readonly feed: EventFeed;
  private readonly assets: Assets;

  constructor(
    private readonly ctx: ApiContext,
    private readonly options: DashboardOptions = {},
  ) {
    this.feed = new EventFeed(ctx.store, options.feed);
    this.assets = new Assets(options.scriptPath);
  }

  /** The dashboard answers `/` and everything under `/ui/`; the API keeps `/v1/`. */
  static owns(path: string): boolean {
    return path === '/' || path === '/ui' || path.startsWith('/ui/');
  }

  close(): void {
    this.feed.close();
  }

  async handle(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const method = req.method ?? 'GET';
    const path = url.pathname;
    try {
      if (method === 'GET' && path.startsWith('/ui/') && /^\/ui\/[a-z.]+\.(css|js)$/.test(path)) {
        const asset = await this.assets.get(path.slice(4));
        if (asset === undefined) throw new HttpError(404, `no file ${path}`, 'NOT_FOUND');
        res.writeHead(200, { ...SECURITY_HEADERS, 'content-type': asset.type, 'cache-control': 'no-cache' });
        res.end(asset.body);
        return;
      }
      if (!isSafeMethod(method)) checkSameOrigin(req);
      if (path === '/ui/login') {
        await this.login(req, res, url);
        return;
      }
      if (path === '/ui/logout' && method === 'POST') {
        res.writeHead(303, { ...SECURITY_HEADERS, 'set-cookie': clearedCookie(), location: '/ui/login' });
        res.end();
        return;
      }
      if (!this.signedIn(req)) {
        if (path === '/ui/events') throw new HttpError(401, 'log in first', 'UNAUTHORIZED');
        const next = encodeURIComponent(`${path}${url.search}`);
        res.writeHead(303, { ...SECURITY_HEADERS, location: `/ui/login?next=${next}` });
        res.end();
        req.resume();
        return;
      }
      if (path === '/ui/events' && method === 'GET') {
        const after = url.searchParams.get('after');
        await this.feed.attach(req, res, after !== null && /^\d+$/.test(after) ? Number(after) : undefined);
        return;
      }
      const cancel = /^\/ui\/deployments\/([^/]+)\/cancel$/.exec(path);
      if (cancel?.[1] !== undefined && method === 'POST') {
        const id = decodeURIComponent(cancel[1]);
        const form = await readForm(req);
        await this.ctx.operations.cancel(id, undefined, form.get('rollback') === 'true');
        res.writeHead(303, { ...SECURITY_HEADERS, location: `/ui/deployments/${encodeURIComponent(id)}` });
        res.end();
        return;
      }
      if (method !== 'GET' && method !== 'HEAD')
        throw new HttpError(405, `${method} is not allowed on ${path}`, 'METHOD_NOT_ALLOWED');
      const found = await this.page(path, url.searchParams);
      if (found === undefined) throw new HttpError(404, `no page ${path}`, 'NOT_FOUND');
      await this.send(res, 200, found);
    } catch (error) {
      if (!(error instanceof HttpError) && !isOutpostError(error))
        log.error({ err: error, path }, 'dashboard request failed');
      req.resume();
      if (res.headersSent) {
        res.destroy();
        return;
      }
      const status = statusOf(error);
      const code = error instanceof HttpError ? error.code : isOutpostError(error) ? error.code : 'INTERNAL';
      await this.send(res, status, {
        title: `Error ${status}`,
        nav: 'fleet',
        body: html`<h1>Error ${status}</h1>
          <p class="error" id="error"><code>${code}</code> ${messageOf(error)}</p>
          <p><a href="/">Back to the fleet</a></p>`,
        live: false,
      }).catch(() => res.destroy());
    }
  }

  private signedIn(req: IncomingMessage): boolean {
    if (this.options.auth === undefined) return true;
    try {
      this.options.auth.check(authorizationOf(req).header);
      return true;
    } catch {
      return false;
    }
  }

  private async send(res: ServerResponse, status: number, p: Page): Promise<void> {
    const text = page(
      {
        title: p.title,
        nav: p.nav,
        session: this.options.auth !== undefined,
        ...(p.live === false ? {} : { lastEventId: await this.feed.latestId() }),
      },
      p.body,
    ).text;
    res.writeHead(status, {
      ...SECURITY_HEADERS,
      'content-type': 'text/html; charset=utf-8',
      'content-length': Buffer.byteLength(text),
      'cache-control': 'no-store',
    });
    res.end(text);
  }

  private async login(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const next = safeNext(url.searchParams.get('next'));
    if (req.method === 'POST') {
      const form = await readForm(req);
      const token = form.get('token') ?? '';
      const auth = this.options.auth;
      let ok = auth === undefined;
      if (auth !== undefined && /^[A-Za-z0-9\-._~+/]+=*$/.test(token)) {
        try {
          auth.check(`Bearer ${token}`);
          ok = true;
        } catch {
          ok = false;
        }
      }
      if (ok) {
        res.writeHead(303, {
          ...SECURITY_HEADERS,
          ...(auth === undefined ? {} : { 'set-cookie': sessionCookie(token) }),
          location: next,
        });
        res.end();
        return;
      }
      await this.send(res, 401, { title: 'Log in', nav: 'none', body: loginBody(next, true), live: false });
      return;
    }
    if (req.method !== 'GET')
      throw new HttpError(405, `${req.method ?? ''} is not allowed on /ui/login`, 'METHOD_NOT_ALLOWED');
    await this.send(res, 200, { title: 'Log in', nav: 'none', body: loginBody(next, false), live: false });
  }

  private async page(path: string, query: URLSearchParams): Promise<Page | undefined> {
    const { store } = this.ctx;
    const nowMs = this.ctx.now();
    if (path === '/') {
      const filter = readFilter(query);
      const [things, groups] = [await store.listThings(), await store.listGroups()];
      const group = filter.group === undefined ? undefined : groups.find((g) => g.name === filter.group);
      if (filter.group !== undefined && group === undefined)
        throw new OutpostError('GROUP_NOT_FOUND', `no group ${filter.group}`, { details: { group: filter.group } });
      const shown = filterThings(things, filter, group);
      return { title: 'Fleet', nav: 'fleet', body: fleetBody(things, shown, groups, filter, nowMs) };
    }
    const thing = /^\/ui\/things\/([^/]+)$/.exec(path)?.[1];
    if (thing !== undefined) {
      const name = decodeURIComponent(thing);
      const record = await store.getThing(name);
      if (record === undefined)
        throw new OutpostError('THING_NOT_FOUND', `no thing ${name}`, { details: { thing: name } });
      const executions = (await store.thingExecutions(name)).slice(-20);
      const latest = await this.feed.latestId();
      const events = (await store.eventsAfter(Math.max(0, latest - RECENT_EVENTS), RECENT_EVENTS))
        .filter((e) => e.thing === name)
        .slice(-20);
      return { title: name, nav: 'fleet', body: deviceBody(record, executions, events, nowMs) };
    }
    if (path === '/ui/deployments') {
      const rows = [];
      for (const deployment of await store.listDeployments())
        rows.push({ deployment, counts: await store.countExecutions(deployment.id) });
      return { title: 'Deployments', nav: 'deployments', body: deploymentsBody(rows, nowMs) };
    }
    const confirm = /^\/ui\/deployments\/([^/]+)\/cancel$/.exec(path)?.[1];
    if (confirm !== undefined) {
      const d = await describeDeployment(store, decodeURIComponent(confirm), nowMs);
      if (d.state !== 'ACTIVE')
        throw new OutpostError('INVALID_ARGUMENT', `deployment ${d.id} is ${d.state}: there is nothing to cancel`);
      return {
        title: `Cancel ${d.id}`,
        nav: 'deployments',
        body: confirmBody(d, query.get('rollback') === 'true'),
        live: false,
      };
    }
    const one = /^\/ui\/deployments\/([^/]+)$/.exec(path)?.[1];
    if (one !== undefined) {
      const d = await describeDeployment(store, decodeURIComponent(one), nowMs);
      return { title: d.id, nav: 'deployments', body: deploymentBody(d, { cancel: true }) };
    }
    return undefined;
  }
}
