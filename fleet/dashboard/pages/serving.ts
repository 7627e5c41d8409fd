import type { ThingRecord } from '../../store/index.js';
import { type Html, html } from '../html.js';
import { SERVING_COLUMNS, badge, millis, muted, num, table } from '../layout.js';

/**
 * The device page's serving-state sections, from what the thing's status message reports (device-agent/storage/
 * status.ts, kept by the registry since migration 006): shadow comparisons (the shadow version answers a share of
 * production calls only to be compared: agreement, exact match of string outputs such as a pipeline's OCR text,
 * cosine, largest difference, latency beside production's) and guardrail watches (a version baking after a
 * deployment: counts so far, and how far into its window it is).
 */
const share = (value: number | undefined): string => (value === undefined ? '–' : `${(100 * value).toFixed(1)} %`);
const cosine = (value: number | undefined): string => (value === undefined ? '–' : value.toFixed(4));
/** null: a NaN or infinity on one side only. */
const diff = (value: number | null): string => (value === null ? '∞' : value.toPrecision(3));

export function shadowsSection(thing: ThingRecord): Html {
  if (thing.shadows.length === 0) return muted('No shadow comparison running.');
  return table(
    html`id="shadows"`,
    [
      'Model',
      'Shadow version',
      num('Mirrored'),
      num('Compared'),
      num('Agreement'),
      num('Exact match'),
      num('Mean cosine'),
      num('Max |diff|'),
      num('Non-finite mismatches'),
      num('Shadow errors'),
      num('Production p50 ms'),
      num('Shadow p50 ms'),
    ],
    thing.shadows.map(
      (s) =>
        html`<tr data-shadow="${s.model}@${s.version}">
          <td>${s.model}</td>
          <td>${s.version}</td>
          <td class="num">${s.percent} %</td>
          <td class="num">${s.compared}</td>
          <td class="num" data-figure="agreement">${share(s.agreement)}</td>
          <td class="num" data-figure="exact-match">${share(s.exactMatch)}</td>
          <td class="num" data-figure="cosine">${cosine(s.meanCosine)}</td>
          <td class="num">${diff(s.maxAbsDiff)}</td>
          <td class="num">${s.nonFiniteMismatches}</td>
          <td class="num">${s.shadowErrors}</td>
          <td class="num">${millis(s.productionP50Ms)}</td>
          <td class="num">${millis(s.shadowP50Ms)}</td>
        </tr>`,
    ),
  );
}

export function guardrailsSection(thing: ThingRecord): Html {
  if (thing.guardrails.length === 0) return muted('No version under guardrail watch.');
  return table(
    html`id="guardrails"`,
    ['Model', 'Version', 'Watch', ...SERVING_COLUMNS],
    thing.guardrails.map(
      (g) =>
        html`<tr data-guardrail="${g.model}@${g.version}">
          <td>${g.model}</td>
          <td>${g.version}</td>
          <td>
            ${badge('watching')}
            <span class="muted">${Math.round(g.elapsedSeconds)} of ${Math.round(g.windowSeconds)} s</span>
          </td>
          <td class="num">${g.requests}</td>
          <td class="num">${g.errors}</td>
          <td class="num">${share(g.errorRate)}</td>
          <td class="num">${millis(g.p50Ms)}</td>
          <td class="num">${millis(g.p99Ms)}</td>
        </tr>`,
    ),
  );
}
