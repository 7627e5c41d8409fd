import { type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EventFeed } from '../../../fleet/dashboard/feed.js';
import { type FleetStore, openStore } from '../../../fleet/index.js';
import { suiteTmpDir } from '../../helpers/tmp.js';

/*
 * The dashboard's event feed on a real SQLite store: however many pages listen, each tick is one read of the event
 * log (no polling storm), each page gets each event once, and a page that reconnects with Last-Event-ID is sent
 * exactly what it missed. Devices' reports, which add no event, are announced by name as a `things` message.
 */
const PAGES = 5;

let tmp: { dir: string; dispose: () => Promise<void> };
let store: FleetStore;
let reads = 0; // eventsAfter calls made on the store
let feed: EventFeed;
let server: Server;
let url: string;

beforeAll(async () => {
  tmp = await suiteTmpDir('outpost-dashboard-feed-');
  const real = await openStore({ url: `sqlite:${join(tmp.dir, 'fleet.db')}` });
  store = new Proxy(real, {
    get(target, key, receiver) {
      if (key === 'eventsAfter') reads++;
      return Reflect.get(target, key, receiver) as unknown;
    },
  });
  feed = new EventFeed(store, { intervalMs: 50, healthIntervalMs: 100, thingsPerMessage: 3 });
  server = createServer((req, res) => {
    const after = new URL(req.url ?? '/', 'http://x').searchParams.get('after');
    void feed.attach(req, res, after === null ? undefined : Number(after));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  feed.close();
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  await store.close();
  await tmp.dispose();
});

/** An SSE client: the event ids it received, in order, and the `things` messages. */
function listen(headers: Record<string, string> = {}, query = '') {
  const controller = new AbortController();
  const ids: number[] = [];
  const things: { things: string[]; more: boolean }[] = [];
  const done = (async () => {
    const r = await fetch(`${url}/${query}`, { headers, signal: controller.signal });
    const reader = (r.body as ReadableStream<Uint8Array>).getReader();
    const decoder = new TextDecoder();
    let text = '';
    for (;;) {
      const { value, done: end } = await reader.read();
      if (end) return;
      text += decoder.decode(value);
      let cut;
      while ((cut = text.indexOf('\n\n')) >= 0) {
        const id = /^id: (\d+)$/m.exec(text.slice(0, cut))?.[1];
        const message = text.slice(0, cut);
        if (id !== undefined) ids.push(Number(id));
        const data = /^event: things\ndata: (.*)$/m.exec(message)?.[1];
        if (data !== undefined) things.push(JSON.parse(data) as { things: string[]; more: boolean });
        text = text.slice(cut + 2);
      }
    }
  })().catch(() => undefined);
  return { ids, things, close: () => controller.abort(), done };
}

async function until(check: () => boolean): Promise<void> {
  await expect.poll(check, { timeout: 10_000, interval: 20 }).toBe(true);
}

describe('the dashboard event feed', () => {
  it('reads the event log once per tick for every page, and gives each page each event once', async () => {
    await store.appendEvent({ type: 'thing.registered', thing: 'a' }, Date.now());
    const pages = Array.from({ length: PAGES }, () => listen());
    await until(() => feed.listening === PAGES);
    const before = { reads, ticks: feed.reads };
    const added = [];
    for (let i = 0; i < 3; i++)
      added.push((await store.appendEvent({ type: 'thing.connected', thing: 'a' }, Date.now())).id);
    await until(() => pages.every((p) => p.ids.length === added.length));
    // Every read of the store since the pages connected was one of the shared reader's ticks.
    expect(reads - before.reads).toBe(feed.reads - before.ticks);
    for (const p of pages) expect(p.ids).toEqual(added);
    for (const p of pages) p.close();
    await until(() => feed.listening === 0);
  });

  it('resumes from Last-Event-ID (or ?after=) with exactly what the page missed', async () => {
    const first = (await store.appendEvent({ type: 'wave.started', deploymentId: 'd' }, Date.now())).id;
    const missed = [
      (await store.appendEvent({ type: 'wave.baking', deploymentId: 'd' }, Date.now())).id,
      (await store.appendEvent({ type: 'wave.done', deploymentId: 'd' }, Date.now())).id,
    ];
    const resumed = listen({ 'last-event-id': String(first) });
    const fresh = listen({}, `?after=${missed[1] ?? 0}`);
    await until(() => resumed.ids.length === missed.length);
    expect(resumed.ids).toEqual(missed);
    const next = (await store.appendEvent({ type: 'deployment.completed', deploymentId: 'd' }, Date.now())).id;
    await until(() => resumed.ids.length === 3 && fresh.ids.length === 1);
    expect(resumed.ids).toEqual([...missed, next]);
    expect(fresh.ids).toEqual([next]);
    resumed.close();
    fresh.close();
  });

  it('names the devices that reported since its last look (health is not in the event log), in bounded messages', async () => {
    const page = listen();
    await until(() => feed.listening === 1);
    const logEnd = (await store.eventsAfter(0, 10_000)).at(-1)?.id ?? 0;
    // Reports made before the feed's first look are already on the page it rendered: keep reporting until one is named.
    await expect
      .poll(
        async () => {
          await store.recordStatus({ name: 'pi-7', connected: true, atMs: Date.now() });
          return page.things.some((m) => m.things.includes('pi-7'));
        },
        { timeout: 10_000, interval: 50 },
      )
      .toBe(true);
    expect(page.things.every((m) => !m.more && m.things.length <= 1)).toBe(true);
    await store.recordStatus({ name: 'pi-7', connected: false, atMs: Date.now() });
    const relogged = (await store.eventsAfter(0, 10_000)).at(-1)?.id ?? 0;
    expect(relogged).toBe(logEnd); // the registry's reports added nothing to the log: only the feed announced them
    // A burst from more devices than one message names (3 here): the message says `more` (every page refreshes).
    const start = Date.now() + 1;
    for (let i = 0; i < 40; i++) await store.recordStatus({ name: `burst-${i}`, connected: true, atMs: start + i });
    await until(() => page.things.some((m) => m.more));
    expect(page.things.find((m) => m.more)?.things).toHaveLength(3);
    page.close();
    await until(() => feed.listening === 0);
  });
});
