import type { IncomingMessage, ServerResponse } from 'node:http';
import { logger } from '../../runtime/log.js';
import type { FleetEvent, FleetStore } from '../store/index.js';

const log = logger('fleet.dashboard');

/**
 * Live updates for every open page, as Server-Sent Events (HTML Living Standard §9.2) from the store's event log.
 * One reader per server, whatever the number of pages: a timer reads `eventsAfter(cursor)` while at least one page
 * listens and writes each new event to all of them. A page that reconnects sends `Last-Event-ID` (or `?after=` on
 * its first connection, the id its HTML was rendered at) and is first sent what it missed, read once for it.
 *
 * Status messages update a thing's health and models without an event (a log entry per report would drown the log),
 * so every `healthIntervalMs` the same reader also asks the registry which things reported since it last looked and
 * sends their names as one `things` message (no id: there is nothing to resume; the next look covers what a dropped
 * connection missed). Pages refresh on it at most that often, whatever the fleet's size.
 */
export interface EventFeedOptions {
  readonly intervalMs?: number; // ms between reads of the event log while someone listens; default 500
  readonly batch?: number; // events per read; default 500
  readonly keepAliveMs?: number; // ms between comment lines that keep proxies from closing an idle stream; default 15 s
  /** ms between looks at which things reported since (health figures are not in the event log); default 5 s. */
  readonly healthIntervalMs?: number;
  /** Names in one `things` message; beyond it the message says `more` (every page refreshes). Default 100. */
  readonly thingsPerMessage?: number;
}

interface Listener {
  readonly res: ServerResponse;
  /** The last event id this page has (or, while catching up, will have). */
  lastId: number;
  catchingUp: boolean;
}

/** The browser waits this long before reconnecting (the SSE `retry:` field). */
const RETRY_MS = 2_000;

export class EventFeed {
  private readonly listeners = new Set<Listener>();
  private cursor: number | undefined;
  private timer: NodeJS.Timeout | undefined;
  private keepAlive: NodeJS.Timeout | undefined;
  private reading = false;
  private readonly intervalMs: number;
  private readonly batch: number;
  private readonly keepAliveMs: number;
  private readonly healthIntervalMs: number;
  private readonly thingsPerMessage: number;
  /** The newest last-seen time already announced; undefined until the first look (which only sets it). */
  private seenMs: number | undefined;
  private lastHealthLookMs = 0;
  /** Reads of the event log so far (one per tick, whatever the number of listeners): the tests count them. */
  reads = 0;

  constructor(
    private readonly store: FleetStore,
    options: EventFeedOptions = {},
  ) {
    this.intervalMs = options.intervalMs ?? 500;
    this.batch = options.batch ?? 500;
    this.keepAliveMs = options.keepAliveMs ?? 15_000;
    this.healthIntervalMs = options.healthIntervalMs ?? 5_000;
    this.thingsPerMessage = options.thingsPerMessage ?? 100;
  }

  get listening(): number {
    return this.listeners.size;
  }

  /** The newest event id (what a page rendered now has seen). */
  async latestId(): Promise<number> {
    let id = this.cursor ?? 0;
    for (;;) {
      const events = await this.store.eventsAfter(id, this.batch);
      const last = events.at(-1);
      if (last === undefined) return id;
      id = last.id;
    }
  }

  /** Answers an SSE request and keeps it open until the page goes away or the feed closes. */
  async attach(req: IncomingMessage, res: ServerResponse, after: number | undefined): Promise<void> {
    const header = req.headers['last-event-id'];
    const resume = typeof header === 'string' && /^\d+$/.test(header) ? Number(header) : after;
    this.cursor ??= await this.latestId();
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      'x-accel-buffering': 'no',
    });
    res.write(`retry: ${RETRY_MS}\n\n`);
    const listener: Listener = { res, lastId: resume ?? this.cursor, catchingUp: false };
    this.listeners.add(listener);
    req.once('close', () => this.listeners.delete(listener));
    this.start();
    if (listener.lastId < this.cursor) await this.catchUp(listener);
  }

  close(): void {
    clearInterval(this.timer);
    clearInterval(this.keepAlive);
    this.timer = undefined;
    this.keepAlive = undefined;
    for (const l of this.listeners) l.res.end();
    this.listeners.clear();
  }

  private start(): void {
    if (this.timer !== undefined) return;
    this.timer = setInterval(() => void this.tick(), this.intervalMs);
    this.keepAlive = setInterval(() => {
      for (const l of this.listeners) l.res.write(': keep-alive\n\n');
    }, this.keepAliveMs);
    this.timer.unref();
    this.keepAlive.unref();
  }

  private async tick(): Promise<void> {
    if (this.listeners.size === 0) {
      // Nobody listens: stop reading; the next page to connect starts the timer again from the log's end.
      clearInterval(this.timer);
      clearInterval(this.keepAlive);
      this.timer = undefined;
      this.keepAlive = undefined;
      this.cursor = undefined;
      this.seenMs = undefined;
      return;
    }
    if (this.reading) return;
    this.reading = true;
    try {
      this.reads++;
      const events = await this.store.eventsAfter(this.cursor ?? 0, this.batch);
      const last = events.at(-1);
      if (last !== undefined) {
        this.cursor = last.id;
        for (const l of this.listeners) if (!l.catchingUp) this.send(l, events);
      }
      await this.lookAtHealth();
    } catch (error) {
      log.warn({ err: error }, 'dashboard event feed: reading the event log failed; trying again');
    } finally {
      this.reading = false;
    }
  }

  /** Every healthIntervalMs: names the things that reported since the last look, to every page. */
  private async lookAtHealth(): Promise<void> {
    const now = Date.now();
    if (now - this.lastHealthLookMs < this.healthIntervalMs) return;
    this.lastHealthLookMs = now;
    const first = this.seenMs === undefined;
    const seen = await this.store.thingsSeenAfter(this.seenMs ?? 0, first ? 0 : this.thingsPerMessage + 1);
    this.seenMs = Math.max(this.seenMs ?? 0, seen.latestMs);
    if (first || seen.things.length === 0) return;
    const more = seen.things.length > this.thingsPerMessage;
    const data = JSON.stringify({ things: seen.things.slice(0, this.thingsPerMessage), more });
    for (const l of this.listeners) if (!l.catchingUp) l.res.write(`event: things\ndata: ${data}\n\n`);
  }

  /** Sends one page what it missed, until it is level with the shared cursor. */
  private async catchUp(l: Listener): Promise<void> {
    l.catchingUp = true;
    try {
      while (this.listeners.has(l) && l.lastId < (this.cursor ?? 0)) {
        const events = await this.store.eventsAfter(l.lastId, this.batch);
        const due = events.filter((e) => e.id <= (this.cursor ?? 0));
        if (due.length === 0) break;
        this.send(l, due);
      }
    } catch (error) {
      log.warn({ err: error }, 'dashboard event feed: catching a page up failed');
      l.res.end();
    } finally {
      l.catchingUp = false;
    }
  }

  private send(l: Listener, events: readonly FleetEvent[]): void {
    for (const e of events) {
      if (e.id <= l.lastId) continue;
      const data = JSON.stringify({ id: e.id, type: e.type, deploymentId: e.deploymentId, thing: e.thing });
      l.res.write(`id: ${e.id}\nevent: fleet\ndata: ${data}\n\n`);
      l.lastId = e.id;
    }
  }
}
