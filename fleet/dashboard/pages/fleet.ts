import { matches } from '../../registry/query.js';
import type { GroupRecord, ThingRecord } from '../../store/index.js';
import { type Html, html, pathPart } from '../html.js';
import { ago, badge, bar, millis, muted, num, percent, table } from '../layout.js';
import { DRIFT_STATES, type DriftState, driftCell, driftState } from './drift.js';

/**
 * The fleet page: every thing with its connection, drift (which things see inputs unlike the training data), target,
 * agent, active versions and serving health, filtered by group, target, version, status and drift (a GET form: the
 * filter is in the address, so it can be bookmarked), and the count of things per active version as a bar.
 */
export interface FleetFilter {
  readonly group?: string;
  readonly target?: string;
  readonly version?: string;
  readonly status?: 'online' | 'offline';
  readonly drift?: DriftState;
}

export function readFilter(query: URLSearchParams): FleetFilter {
  const pick = (key: string) => {
    const value = query.get(key);
    return value === null || value === '' ? undefined : value;
  };
  const status = pick('status');
  const drift = DRIFT_STATES.find((d) => d === pick('drift'));
  return {
    ...(pick('group') === undefined ? {} : { group: pick('group') }),
    ...(pick('target') === undefined ? {} : { target: pick('target') }),
    ...(pick('version') === undefined ? {} : { version: pick('version') }),
    ...(status === 'online' || status === 'offline' ? { status } : {}),
    ...(drift === undefined ? {} : { drift }),
  };
}

/** The versions a thing serves callers with (`model@version`), the ones it only compares (shadows) left out. */
export function activeVersions(thing: ThingRecord): string[] {
  return thing.models.filter((m) => m.role !== 'shadow').map((m) => `${m.model}@${m.version}`);
}

export function filterThings(
  things: readonly ThingRecord[],
  filter: FleetFilter,
  group: GroupRecord | undefined,
): ThingRecord[] {
  return things.filter((t) => {
    if (group !== undefined && !(group.kind === 'static' ? group.things.includes(t.name) : matches(t, group.where)))
      return false;
    if (filter.target !== undefined && t.target.profile !== filter.target) return false;
    if (filter.version !== undefined && !activeVersions(t).includes(filter.version)) return false;
    if (filter.status !== undefined && t.connected !== (filter.status === 'online')) return false;
    if (filter.drift !== undefined && driftState(t) !== filter.drift) return false;
    return true;
  });
}

function options(name: string, label: string, values: readonly string[], selected: string | undefined): Html {
  return html`<label
    >${label}<select name="${name}">
      <option value="">any</option>
      ${values.map((v) => html`<option value="${v}" ${v === selected ? html` selected` : ''}>${v}</option>`)}
    </select></label
  >`;
}

function health(thing: ThingRecord): { requests: number; errors: number; p50?: number; p99?: number } {
  const requests = thing.health.reduce((n, h) => n + h.requests, 0);
  const errors = thing.health.reduce((n, h) => n + h.errors, 0);
  // The latency of the busiest version: the one callers mostly see.
  const busiest = [...thing.health].sort((a, b) => b.requests - a.requests)[0];
  return {
    requests,
    errors,
    ...(busiest?.p50Ms === undefined ? {} : { p50: busiest.p50Ms }),
    ...(busiest?.p99Ms === undefined ? {} : { p99: busiest.p99Ms }),
  };
}

function modelsCell(thing: ThingRecord): Html {
  if (thing.models.length === 0) return html`<span class="muted">none</span>`;
  return html`${thing.models.map(
    (m, i) =>
      html`${i > 0 ? html`<br />` : ''}${m.model}@${m.version}<span class="muted"
          >${m.variant === undefined ? '' : ` ${m.variant}`}${m.backend === undefined ? '' : ` · ${m.backend}`}${m.role === 'shadow' ? ' · shadow' : ''}${m.trafficPercent === undefined ? '' : ` · ${m.trafficPercent} %`}</span
        >`,
  )}`;
}

export function fleetBody(
  all: readonly ThingRecord[],
  shown: readonly ThingRecord[],
  groups: readonly GroupRecord[],
  filter: FleetFilter,
  nowMs: number,
): Html {
  const targets = [...new Set(all.map((t) => t.target.profile).filter((p) => p !== undefined))].sort();
  const versions = [...new Set(all.flatMap(activeVersions))].sort();
  const byVersion = new Map<string, number>();
  for (const t of shown) for (const v of new Set(activeVersions(t))) byVersion.set(v, (byVersion.get(v) ?? 0) + 1);
  const none = shown.filter((t) => activeVersions(t).length === 0).length;
  const online = shown.filter((t) => t.connected).length;
  const drifting = shown.filter((t) => driftState(t) === 'drifting').length;
  const segments = [...byVersion].map(([name, count], i) => ({ name, count, cls: `seg-${i % 8}` }));
  if (none > 0) segments.push({ name: 'no active version', count: none, cls: 'seg-held' });
  return html`<h1>Fleet</h1>
    <p id="fleet-summary">
      ${shown.length} of ${all.length} things shown · ${online} online · ${shown.length - online} offline ·
      <a href="/?drift=drifting" id="drifting-count">${drifting} drifting</a>
    </p>
    <form class="filters" method="get" action="/" aria-label="Filter things">
      ${options(
        'group',
        'Group',
        groups.map((g) => g.name),
        filter.group,
      )}
      ${options('target', 'Target', targets, filter.target)} ${options('version', 'Version', versions, filter.version)}
      ${options('status', 'Status', ['online', 'offline'], filter.status)}
      ${options('drift', 'Drift', DRIFT_STATES, filter.drift)}
      <button type="submit">Filter</button> <a href="/">Clear</a>
    </form>
    <h2>Things per active version</h2>
    <div id="versions">${segments.length === 0 ? muted('No things.') : bar('Things per active version', segments)}</div>
    <h2>Things</h2>
    ${table(
      html`id="things"`,
      [
        'Thing',
        'Status',
        'Drift',
        'Last seen',
        'Target',
        'Agent',
        'Active versions',
        num('Requests'),
        num('Error rate'),
        num('p50 ms'),
        num('p99 ms'),
      ],
      shown.map((t) => {
        const h = health(t);
        return html`<tr data-thing="${t.name}">
          <th scope="row"><a href="/ui/things/${pathPart(t.name)}">${t.name}</a></th>
          <td>${badge(t.connected ? 'online' : 'offline')}</td>
          <td data-drift="${driftState(t)}">${driftCell(t)}</td>
          <td>${ago(t.lastSeenMs, nowMs)}</td>
          <td>${t.target.profile ?? '–'}</td>
          <td>${t.agentVersion ?? '–'}</td>
          <td>${modelsCell(t)}</td>
          <td class="num">${h.requests}</td>
          <td class="num">${percent(h.errors, h.requests)}</td>
          <td class="num">${millis(h.p50)}</td>
          <td class="num">${millis(h.p99)}</td>
        </tr>`;
      }),
    )}`;
}
