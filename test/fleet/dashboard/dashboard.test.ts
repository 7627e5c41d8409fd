import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { type Browser, type BrowserContext, type Page, chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CHROMIUM,
  CHROMIUM_ARGS,
  CALM,
  DRIFTING,
  type DashboardFleet,
  PREFIX,
  TOKEN,
  V1,
  V2,
  abortedAndRolledBack,
  buildDashboardScript,
  deployV1,
  deployV2,
  reportServingState,
  startDashboardFleet,
} from '../../helpers/dashboard-fleet.js';
import { suiteTmpDir } from '../../helpers/tmp.js';

/*
 * The fleet dashboard in headless Chromium (Debian's `chromium`, driven by playwright-core; no browser download),
 * against a simulated fleet on Mosquitto and the fleet service with a token: log in, the fleet page, a canary that
 * aborts watched live on its page (wave counts, abort reason and figures, devices rolled back), cancel with its
 * confirmation, escaping of device-supplied strings, and the Content-Security-Policy refusing inline script.
 */
const HAVE_CHROMIUM = existsSync(CHROMIUM);
if (!HAVE_CHROMIUM)
  // eslint-disable-next-line no-console -- the suite says why it skips, once
  console.warn(`dashboard browser tests skipped: ${CHROMIUM} is missing (apt-get install chromium; .ci/run does)`);

const LIVE_MS = 60_000; // ms for the page to show what the fleet did (live updates, on a shared machine)
const XSS = '<img src=x onerror="window.__pwned=1">';

let tmp: { dir: string; dispose: () => Promise<void> } | undefined;
let f: DashboardFleet;
let started: DashboardFleet | undefined;
let browser: Browser | undefined;
let context: BrowserContext;
let page: Page;

/** An expression evaluated in the page (as text: the suite's TypeScript has no DOM types). */
const inPage = (expression: string): Promise<unknown> => page.evaluate(expression);

beforeAll(async () => {
  tmp = await suiteTmpDir('outpost-dashboard-');
  const script = await buildDashboardScript(join(tmp.dir, 'ui'));
  f = started = await startDashboardFleet(tmp.dir, script);
  if (HAVE_CHROMIUM) {
    browser = await chromium.launch({ executablePath: CHROMIUM, args: [...CHROMIUM_ARGS] });
    context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    page = await context.newPage();
  }
}, 180_000);

afterAll(async () => {
  await browser?.close();
  await started?.close();
  await tmp?.dispose();
});

describe('the dashboard over HTTP (no browser)', () => {
  it('sends to the login form without the token, and refuses a wrong one', async () => {
    const r = await fetch(`${f.fleet.url}/ui/deployments`, { redirect: 'manual' });
    expect(r.status).toBe(303);
    expect(r.headers.get('location')).toBe('/ui/login?next=%2Fui%2Fdeployments');
    const events = await fetch(`${f.fleet.url}/ui/events`);
    expect(events.status).toBe(401);
    const wrong = await fetch(`${f.fleet.url}/ui/login`, {
      method: 'POST',
      redirect: 'manual',
      headers: { 'content-type': 'application/x-www-form-urlencoded', origin: f.fleet.url },
      body: 'token=nope',
    });
    expect(wrong.status).toBe(401);
    expect(wrong.headers.get('set-cookie')).toBeNull();
  });

  it('a cookie-carried token changes nothing from another origin, nor without an origin', async () => {
    const cookie = `outpost_token=${TOKEN}`;
    const form = { 'content-type': 'application/x-www-form-urlencoded', cookie };
    for (const headers of [
      { ...form, origin: 'http://evil.example' },
      { ...form, 'sec-fetch-site': 'cross-site' },
      form,
    ]) {
      const r = await fetch(`${f.fleet.url}/ui/deployments/nope/cancel`, {
        method: 'POST',
        headers,
        body: 'rollback=true',
      });
      expect(r.status).toBe(403);
      expect(await r.text()).toContain('FORBIDDEN');
    }
    const api = await fetch(`${f.fleet.url}/v1/deployments/nope/cancel`, {
      method: 'POST',
      headers: { cookie, origin: 'http://evil.example' },
    });
    expect(api.status).toBe(403);
    // Reading with the cookie is fine: a page of this server calls the API so.
    const read = await fetch(`${f.fleet.url}/v1/things`, { headers: { cookie } });
    expect(read.status).toBe(200);
  });

  it('resumes the event stream from Last-Event-ID', async () => {
    const all = (await f.api('GET', '/v1/events?after=0&limit=5')).body as { events: { id: number }[] };
    const from = all.events[1]?.id ?? 0;
    const controller = new AbortController();
    const r = await fetch(`${f.fleet.url}/ui/events`, {
      headers: { cookie: `outpost_token=${TOKEN}`, 'last-event-id': String(from) },
      signal: controller.signal,
    });
    expect(r.headers.get('content-type')).toContain('text/event-stream');
    const reader = (r.body as ReadableStream<Uint8Array>).getReader();
    let text = '';
    while (!/\nid: \d+/.test(`\n${text}`)) text += new TextDecoder().decode((await reader.read()).value);
    controller.abort();
    expect(Number(/(?:^|\n)id: (\d+)/.exec(text)?.[1])).toBe(all.events[2]?.id);
  });
});

describe.skipIf(!HAVE_CHROMIUM)('the dashboard in headless Chromium', () => {
  it('logs in with the token into an HttpOnly, SameSite=Strict cookie and shows the fleet', async () => {
    await page.goto(`${f.fleet.url}/`);
    expect(new URL(page.url()).pathname).toBe('/ui/login');
    await page.fill('#token', 'wrong-token');
    await page.keyboard.press('Enter');
    await expect.poll(() => page.textContent('#error')).toContain('not valid');
    await page.fill('#token', TOKEN);
    await page.keyboard.press('Enter');
    await page.waitForSelector('#things');
    const [cookie] = await context.cookies();
    expect(cookie).toMatchObject({ name: 'outpost_token', httpOnly: true, sameSite: 'Strict' });
    expect(await inPage('document.cookie')).toBe('');
    expect(await page.locator('#things tbody tr').count()).toBe(f.things.length);
    expect(await page.textContent('#fleet-summary')).toContain(`${f.things.length} online`);
  });

  it('shows a canary that aborts, live: wave counts, the abort reason and figures, the devices rolled back', async () => {
    await deployV1(f);
    await deployV2(f);
    await page.goto(`${f.fleet.url}/ui/deployments/${V2.id}`);
    // From here on the page is never reloaded: what changes arrives over the event stream.
    await page.waitForSelector('#live[data-state="open"]');
    await inPage("window.__refreshes = 0; document.addEventListener('outpost:refreshed', () => window.__refreshes++)");
    const final = await abortedAndRolledBack(f);
    const canary = final.rollout?.waves[0];
    const rest = final.rollout?.waves[1];
    expect(canary?.failed).toBeGreaterThan(0);
    const wave = (n: number, count: string) => page.textContent(`li[data-wave="${n}"] [data-count="${count}"]`);
    await expect.poll(() => page.textContent('h1'), { timeout: LIVE_MS }).toContain('ABORTED');
    await expect.poll(() => wave(0, 'failed'), { timeout: LIVE_MS }).toBe(`failed ${canary?.failed}`);
    await expect.poll(() => wave(0, 'rolledBack'), { timeout: LIVE_MS }).toBe(`rolled back ${canary?.rolledBack}`);
    expect(await wave(0, 'succeeded')).toBe(`succeeded ${canary?.succeeded}`);
    expect(await wave(1, 'canceled')).toBe(`canceled ${rest?.canceled}`);
    expect(rest?.canceled).toBe(f.things.length - (canary?.devices ?? 0));
    expect(await page.textContent('#abort-reason')).toContain('abort criteria tripped');
    expect(await page.textContent('#abort-figures')).toContain('failurePercentage');
    const rolledBack = await page.locator('#rolled-back li').allTextContents();
    expect(rolledBack.sort()).toEqual([...(final.rollout?.rolledBack ?? [])].sort());
    expect(rolledBack.length).toBeGreaterThan(0);
    expect(rolledBack.every((t) => t.startsWith(PREFIX))).toBe(true);
    // An ended deployment offers no cancel.
    expect(await page.locator('a[href$="/cancel"]').count()).toBe(0);
    // The page was refreshed by events, never reloaded.
    expect(await inPage('window.__refreshes')).toBeGreaterThan(0);
  });

  it('cancels a deployment only after its confirmation, by keyboard', async () => {
    const r = await f.api('POST', '/v1/deployments', {
      id: 'cnn-3',
      artifacts: [f.artifacts['3.0.0']],
      things: f.things,
      strategy: 'canary:2,bake=30m',
      seed: 'dashboard',
    });
    expect(r.status).toBe(201);
    await page.goto(`${f.fleet.url}/ui/deployments`);
    await page.click('a[href="/ui/deployments/cnn-3"]');
    await page.click('text=Cancel and roll back…');
    expect(await page.textContent('h1')).toContain('Cancel and roll back cnn-3?');
    await page.click('text=No, go back');
    expect((await f.deployment('cnn-3')).state).toBe('ACTIVE');
    await page.click('text=Cancel…');
    // The confirm button has the focus: Enter confirms.
    expect(await inPage('document.activeElement?.id')).toBe('confirm');
    await page.keyboard.press('Enter');
    await page.waitForURL(`${f.fleet.url}/ui/deployments/cnn-3`);
    expect(await page.textContent('h1')).toContain('CANCELED');
    expect((await f.deployment('cnn-3')).state).toBe('CANCELED');
    expect((await f.deployment(V1.id)).state).toBe('COMPLETED');
  });

  it('escapes device-supplied strings: markup in an attribute renders as text', async () => {
    const thing = f.things[0] ?? '';
    const r = await f.api('PUT', `/v1/things/${thing}/attributes`, { attributes: { site: XSS } });
    expect(r.status).toBe(200);
    await page.goto(`${f.fleet.url}/ui/things/${thing}`);
    expect(await page.textContent('#attributes dd')).toBe(XSS);
    expect(await page.locator('main img').count()).toBe(0);
    expect(await inPage('window.__pwned')).toBeUndefined();
  });

  it('sends a strict CSP, under which no inline script runs', async () => {
    const response = await page.goto(`${f.fleet.url}/`);
    const csp = response?.headers()['content-security-policy'] ?? '';
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).not.toContain('unsafe-inline');
    // A script element added at run time is inline script too: the CSP must refuse it and report the violation.
    const outcome = await inPage(`new Promise((resolve) => {
      document.addEventListener('securitypolicyviolation', (e) =>
        resolve({ ran: window.__inline === 1, blocked: e.violatedDirective }));
      const s = document.createElement('script');
      s.textContent = 'window.__inline = 1';
      document.body.append(s);
    })`);
    expect(outcome).toEqual({ ran: false, blocked: 'script-src-elem' });
    // Nothing on the page came from anywhere but this server.
    const hosts = (await inPage(
      "performance.getEntriesByType('resource').map((e) => new URL(e.name).host)",
    )) as string[];
    expect(hosts.every((h) => h === new URL(f.fleet.url).host)).toBe(true);
  });

  it('is readable at a phone width: no page-wide horizontal scroll', async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    for (const path of ['/', `/ui/things/${f.things[0] ?? ''}`, `/ui/deployments/${V2.id}`]) {
      await page.goto(`${f.fleet.url}${path}`);
      const overflow = (await inPage('document.documentElement.scrollWidth - window.innerWidth')) as number;
      expect(overflow, path).toBeLessThanOrEqual(0);
    }
    await page.setViewportSize({ width: 1280, height: 800 });
  });

  it('shows which things drift, filters on it, and the device page has per-feature scores, shadows and guardrails', async () => {
    await reportServingState(f);
    await page.goto(`${f.fleet.url}/`);
    expect(await page.getAttribute(`tr[data-thing="${DRIFTING}"] td[data-drift]`, 'data-drift')).toBe('drifting');
    expect(await page.textContent(`tr[data-thing="${DRIFTING}"] td[data-drift]`)).toContain(
      'mlp@1.0.0 psi 0.940 on x[0]',
    );
    expect(await page.getAttribute(`tr[data-thing="${CALM}"] td[data-drift]`, 'data-drift')).toBe('calm');
    expect(await page.getAttribute(`tr[data-thing="${f.things[0] ?? ''}"] td[data-drift]`, 'data-drift')).toBe(
      'unmonitored',
    );
    expect(await page.textContent('#drifting-count')).toBe('1 drifting');
    // The filter, by keyboard: choose "drifting" and submit the form.
    await page.selectOption('select[name="drift"]', 'drifting');
    await page.focus('form.filters button[type="submit"]');
    await page.keyboard.press('Enter');
    await page.waitForURL(/[?&]drift=drifting/);
    expect(await inPage("[...document.querySelectorAll('#things tbody tr')].map((r) => r.dataset.thing)")).toEqual([
      DRIFTING,
    ]);
    await page.click(`a[href="/ui/things/${DRIFTING}"]`);
    await page.waitForSelector('#drift');
    const rows = page.locator('table.drift[data-drift="mlp@1.0.0"] tbody tr');
    expect(await rows.count()).toBe(8);
    // Worst first, each against its threshold.
    expect(await rows.first().getAttribute('data-feature')).toBe('x[0]');
    expect(await rows.first().textContent()).toMatch(/x\[0\]\s*psi\s*0\.940\s*0\.250\s*over/);
    expect(await page.textContent('h3[data-drift="mlp@1.0.0"]')).toContain('drifting');
    const shadow = page.locator('#shadows tr[data-shadow="mlp@1.1.0"]');
    expect(await shadow.locator('[data-figure="agreement"]').textContent()).toBe('98.3 %');
    expect(await shadow.locator('[data-figure="cosine"]').textContent()).toBe('0.9991');
    expect(await page.textContent('#guardrails tr[data-guardrail="mlp@1.0.0"]')).toMatch(/watching\s*240 of 600 s/);
    expect(await page.textContent('#models')).toContain('shadow');
    await page.goto(`${f.fleet.url}/ui/things/${CALM}`);
    expect(await page.textContent('h3[data-drift="mlp@1.0.0"]')).toContain('calm');
    expect(await page.locator('table.drift .s-over').count()).toBe(0);
  });
});
