import { type Html, type HtmlValue, html } from './html.js';

/**
 * The page shell every dashboard page shares: one stylesheet and one deferred script from this server (the CSP allows
 * nothing else), a skip link and landmarks for keyboard and screen-reader users, the live-update state, and the event
 * id the page was rendered at (where its script resumes the event stream).
 */
export interface PageOptions {
  readonly title: string;
  readonly nav: 'fleet' | 'deployments' | 'none';
  /** The newest event id when the page was rendered; absent: the page has no live updates (login). */
  readonly lastEventId?: number;
  /** A token is configured: offer to log out. */
  readonly session?: boolean;
}

const NAV: ReadonlyArray<readonly [PageOptions['nav'], string, string]> = Object.freeze([
  ['fleet', '/', 'Fleet'],
  ['deployments', '/ui/deployments', 'Deployments'],
]);

export function page(options: PageOptions, body: HtmlValue): Html {
  const live = options.lastEventId !== undefined;
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${options.title} · Outpost fleet</title>
<link rel="stylesheet" href="/ui/dashboard.css">
${live ? html`<script src="/ui/live.js" defer></script>` : ''}
</head>
<body${live ? html` data-last-event="${options.lastEventId}"` : ''}>
<a class="skip" href="#main">Skip to content</a>
<header>
<span class="brand">Outpost fleet</span>
${
  options.nav === 'none'
    ? ''
    : html`<nav aria-label="Pages">
        ${NAV.map(
          ([key, href, label]) =>
            html`<a href="${href}" ${key === options.nav ? html` aria-current="page"` : ''}>${label}</a>`,
        )}
      </nav>`
}
${live ? html`<span class="live" id="live" data-state="connecting" role="status" aria-live="polite">connecting…</span>` : ''}
${
  options.session === true
    ? html`<form method="post" action="/ui/logout"><button type="submit">Log out</button></form>`
    : ''
}
</header>
<main id="main" tabindex="-1">
${body}
</main>
</body>
</html>
`;
}

/** A status word as text with a colour class (the colour is never the only cue). */
export function badge(status: string): Html {
  return html`<span class="badge s-${status.replace(/[^A-Za-z_-]/g, '')}">${status}</span>`;
}

export function ago(ms: number, nowMs: number): string {
  if (ms <= 0) return 'never';
  const s = Math.max(0, Math.round((nowMs - ms) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86_400) return `${Math.round(s / 3600)} h ago`;
  return new Date(ms).toISOString().slice(0, 16).replace('T', ' ');
}

export function millis(value: number | undefined): string {
  return value === undefined ? '–' : value < 10 ? value.toFixed(2) : value.toFixed(1);
}

export function percent(part: number, whole: number): string {
  return whole === 0 ? '–' : `${((100 * part) / whole).toFixed(1)} %`;
}

/**
 * A horizontal bar of segments as SVG (widths are attributes, not inline styles, which the CSP refuses), with a text
 * legend beside it: the figures are readable without the picture.
 */
export function bar(
  label: string,
  segments: ReadonlyArray<{ readonly name: string; readonly count: number; readonly cls: string }>,
): Html {
  const total = segments.reduce((n, s) => n + s.count, 0);
  let x = 0;
  const rects = segments
    .filter((s) => s.count > 0)
    .map((s) => {
      const width = (100 * s.count) / total;
      const rect = html`<rect class="${s.cls}" x="${x.toFixed(3)}%" y="0" width="${width.toFixed(3)}%" height="100%"
        ><title>${s.name}: ${s.count}</title></rect
      >`;
      x += width;
      return rect;
    });
  return html`<svg class="bar" role="img" aria-label="${label}" preserveAspectRatio="none">${rects}</svg>
    <ul class="legend">
      ${segments
        .filter((s) => s.count > 0)
        .map((s) => html`<li><span class="key ${s.cls}"></span>${s.name}: ${s.count}</li>`)}
    </ul>`;
}

/** A column heading: its text, or `num(text)` for a column of figures (right-aligned, `class="num"`). */
export type Column = string | { readonly num: string };

export function num(heading: string): Column {
  return { num: heading };
}

/** The serving-health headings the device page's health and guardrail tables share (a version's calls so far). */
export const SERVING_COLUMNS: readonly Column[] = Object.freeze([
  num('Requests'),
  num('Errors'),
  num('Error rate'),
  num('p50 ms'),
  num('p99 ms'),
]);

/**
 * A table of records as every page writes one: in a horizontally scrolling box (phone width), headings as
 * `<th scope="col">`, and the rows as the page builds them. `attributes` names it (`id="…"`, `data-…`): the tests and
 * the live script find tables by them.
 */
export function table(attributes: Html, columns: readonly Column[], rows: HtmlValue): Html {
  return html`<div class="scroll">
    <table ${attributes}>
      <thead>
        <tr>
          ${columns.map((c) =>
            typeof c === 'string' ? html`<th scope="col">${c}</th>` : html`<th scope="col" class="num">${c.num}</th>`,
          )}
        </tr>
      </thead>
      <tbody>
        ${rows}
      </tbody>
    </table>
  </div>`;
}

/** A line of muted text: what a section says when it has nothing to show. */
export function muted(text: string): Html {
  return html`<p class="muted">${text}</p>`;
}
