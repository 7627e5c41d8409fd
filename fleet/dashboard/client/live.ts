/**
 * The dashboard's only script (built by tsup into dist/dashboard/live.js, served from /ui/live.js; the CSP allows no
 * other). The page is complete without it: it adds live updates. It listens to /ui/events (Server-Sent Events; the
 * browser reconnects by itself and sends Last-Event-ID, so nothing is missed) and, when fleet events arrive, fetches
 * the same page again and swaps its <main> in, at most once per REFRESH_MS, keeping the keyboard focus where it was.
 * A `things` message (devices that reported since the last one: new health figures) refreshes the fleet page, and a
 * device page when it names that device.
 * Bake countdowns tick down every second between updates.
 */
const REFRESH_MS = 400; // ms: events closer together than this cause one refresh

const main = document.getElementById('main');
const live = document.getElementById('live');
const after = document.body.dataset.lastEvent;

function status(state: 'open' | 'closed', text: string): void {
  if (live === null) return;
  live.dataset.state = state;
  live.textContent = text;
}

/** Something that finds the focused element again in the new page: its id, else its link, else its form field. */
function focusKey(el: Element | null): string | undefined {
  if (!(el instanceof HTMLElement) || main === null || !main.contains(el)) return undefined;
  if (el.id !== '') return `#${CSS.escape(el.id)}`;
  const href = el.getAttribute('href');
  if (href !== null) return `a[href="${CSS.escape(href)}"]`;
  const name = el.getAttribute('name');
  return name === null ? undefined : `[name="${CSS.escape(name)}"]`;
}

let timer: number | undefined;
let running = false;
let again = false;

async function refresh(): Promise<void> {
  if (main === null) return;
  if (running) {
    again = true;
    return;
  }
  running = true;
  try {
    const response = await fetch(location.href, { credentials: 'same-origin', headers: { accept: 'text/html' } });
    if (!response.ok) return;
    const doc = new DOMParser().parseFromString(await response.text(), 'text/html');
    const next = doc.getElementById('main');
    if (next === null) return;
    // A control being used (a filter's select open) is not pulled from under the user: try after it loses focus.
    const active = document.activeElement;
    if (active instanceof HTMLSelectElement || active instanceof HTMLInputElement) {
      active.addEventListener('blur', () => schedule(), { once: true });
      return;
    }
    const key = focusKey(active);
    main.replaceChildren(...Array.from(next.childNodes, (n) => document.importNode(n, true)));
    if (key !== undefined) {
      const target = main.querySelector(key);
      if (target instanceof HTMLElement) target.focus({ preventScroll: true });
    }
    tick();
    document.dispatchEvent(new CustomEvent('outpost:refreshed'));
  } catch {
    // The server is restarting or the network is down: the event stream reconnects and triggers the next refresh.
  } finally {
    running = false;
    if (again) {
      again = false;
      schedule();
    }
  }
}

function schedule(): void {
  if (timer !== undefined) return;
  timer = window.setTimeout(() => {
    timer = undefined;
    void refresh();
  }, REFRESH_MS);
}

/** Whether devices' new reports change this page: the fleet page shows every device's health, a device page its own. */
function wantsThings(data: string): boolean {
  const path = location.pathname;
  if (path === '/') return true;
  const prefix = '/ui/things/';
  if (!path.startsWith(prefix)) return false;
  try {
    const parsed = JSON.parse(data) as { things?: unknown; more?: unknown };
    const names = Array.isArray(parsed.things) ? parsed.things : [];
    return parsed.more === true || names.includes(decodeURIComponent(path.slice(prefix.length)));
  } catch {
    return true;
  }
}

/** Each `data-bake-until` (an ISO time) shows the seconds left until then. */
function tick(): void {
  for (const el of document.querySelectorAll<HTMLElement>('[data-bake-until]')) {
    const until = Date.parse(el.dataset.bakeUntil ?? '');
    if (Number.isNaN(until)) continue;
    const left = Math.max(0, Math.ceil((until - Date.now()) / 1000));
    el.textContent = left >= 60 ? `${(left / 60).toFixed(1)} min left` : `${left} s left`;
  }
}

if (main !== null && after !== undefined) {
  const source = new EventSource(`/ui/events?after=${encodeURIComponent(after)}`);
  source.addEventListener('open', () => status('open', 'live'));
  source.addEventListener('error', () => status('closed', 'reconnecting…'));
  source.addEventListener('fleet', () => schedule());
  source.addEventListener('things', (e: MessageEvent<string>) => {
    if (wantsThings(e.data)) schedule();
  });
  window.setInterval(tick, 1000);
}
