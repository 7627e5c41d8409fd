import type { ThingDrift, ThingRecord } from '../../store/index.js';
import { type Html, html } from '../html.js';
import { badge, muted, num, table } from '../layout.js';

/**
 * Drift as the pages show it: which things see inputs unlike their model's training data (the drift monitor on the
 * device compares live inputs and outputs with the artifact's baseline, runtime/monitor; the registry keeps each
 * thing's latest worst scores per monitored version). The fleet page's column and filter, the device page's
 * per-feature table.
 */
export const DRIFT_STATES = Object.freeze(['drifting', 'calm', 'unmonitored'] as const);
export type DriftState = (typeof DRIFT_STATES)[number];

/** drifting: some monitored version crossed a threshold; calm: monitored, none did; unmonitored: no figures. */
export function driftState(thing: ThingRecord): DriftState {
  if (thing.drift.length === 0) return 'unmonitored';
  return thing.drift.some((d) => d.drifting) ? 'drifting' : 'calm';
}

type Score = ThingDrift['scores'][number];

/** The score furthest over (or nearest to) its threshold, as a ratio: what one cell can say about a version. */
function worst(d: ThingDrift): Score | undefined {
  return [...d.scores].sort((a, b) => b.value / b.threshold - a.value / a.threshold)[0];
}

const figure = (value: number): string => (Math.abs(value) >= 10 ? value.toFixed(1) : value.toFixed(3));

/** The fleet page's cell: a badge, and for a drifting thing each drifting version's worst score (`mlp@1.0.0 psi 0.41 on x[3]`). */
export function driftCell(thing: ThingRecord): Html {
  const state = driftState(thing);
  if (state === 'unmonitored') return html`<span class="muted">–</span>`;
  if (state === 'calm') return badge(state);
  return html`${badge(state)}${thing.drift
    .filter((d) => d.drifting)
    .map((d) => {
      const w = worst(d);
      return html`<br /><span class="muted"
          >${d.model}@${d.version}${w === undefined ? '' : ` ${w.stat} ${figure(w.value)} on ${w.feature}`}</span
        >`;
    })}`;
}

/** The device page's section: each monitored version, its window, and every score it reported against its threshold. */
export function driftSection(thing: ThingRecord): Html {
  if (thing.drift.length === 0)
    return muted('No drift figures reported (no baseline in the artifact, or the monitor is off).');
  return html`${thing.drift.map(
    (d) =>
      html`<h3 data-drift="${d.model}@${d.version}">
          ${d.model}@${d.version} ${badge(d.drifting ? 'drifting' : 'calm')}
          <span class="muted">${d.samples} calls in the window</span>
        </h3>
        ${
          d.scores.length === 0
            ? muted('No scores yet.')
            : table(
                html`class="drift" data-drift="${d.model}@${d.version}"`,
                ['Feature', 'Statistic', num('Score'), num('Threshold'), 'Over'],
                [...d.scores]
                  .sort((a, b) => b.value / b.threshold - a.value / a.threshold)
                  .map(
                    (s) =>
                      html`<tr data-feature="${s.feature}" data-stat="${s.stat}">
                        <td>${s.feature}</td>
                        <td>${s.stat}</td>
                        <td class="num">${figure(s.value)}</td>
                        <td class="num">${figure(s.threshold)}</td>
                        <td>${s.value >= s.threshold ? badge('over') : html`<span class="muted">no</span>`}</td>
                      </tr>`,
                  ),
              )
        }`,
  )}`;
}
