import type { ExecutionRecord, FleetEvent, ThingRecord } from '../../store/index.js';
import { type Html, html, pathPart } from '../html.js';
import { SERVING_COLUMNS, ago, badge, millis, muted, num, percent, table } from '../layout.js';
import { driftSection } from './drift.js';
import { guardrailsSection, shadowsSection } from './serving.js';

/**
 * A device's page: its registry record and attributes, the versions it reports installed and active with the serving
 * plan (role, traffic weight, variant, backend), its shadow comparisons and guardrail watches, serving health and
 * drift per version, its recent deployments (executions) and its recent events. Everything here came from the device or an operator: all of it goes through `html`.
 */
export function details(value: Readonly<Record<string, unknown>>): string {
  return Object.entries(value)
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
    .join(' ');
}

export function deviceBody(
  thing: ThingRecord,
  executions: readonly ExecutionRecord[],
  events: readonly FleetEvent[],
  nowMs: number,
): Html {
  const attributes = Object.entries(thing.attributes);
  return html`<h1>${thing.name} ${badge(thing.connected ? 'online' : 'offline')}</h1>
    <h2>Record</h2>
    <dl class="record" id="record">
      <dt>Status</dt>
      <dd>${thing.connected ? 'connected' : 'disconnected'}</dd>
      <dt>Last seen</dt>
      <dd>${ago(thing.lastSeenMs, nowMs)}</dd>
      <dt>First seen</dt>
      <dd>${ago(thing.firstSeenMs, nowMs)}</dd>
      <dt>Target</dt>
      <dd>
        ${thing.target.profile ?? '–'}${thing.target.cpuProfile !== undefined && thing.target.cpuProfile !== thing.target.profile ? ` (CPU ${thing.target.cpuProfile})` : ''}
      </dd>
      <dt>Architecture</dt>
      <dd>${thing.target.arch ?? '–'}</dd>
      <dt>Agent</dt>
      <dd>${thing.agentVersion ?? '–'}</dd>
      <dt>ONNX Runtime</dt>
      <dd>${thing.onnxruntimeVersion ?? '–'}</dd>
    </dl>
    <h2>Attributes</h2>
    ${
      attributes.length === 0
        ? muted('None.')
        : html`<dl class="record" id="attributes">
            ${attributes.map(
              ([k, v]) =>
                html`<dt>${k}</dt>
                  <dd>${v}</dd>`,
            )}
          </dl>`
    }
    <h2>Serving plan</h2>
    ${
      thing.models.length === 0
        ? muted('The device reports no active model.')
        : table(
            html`id="models"`,
            ['Model', 'Version', 'Role', num('Traffic'), 'Variant', 'Backend'],
            thing.models.map(
              (m) =>
                html`<tr>
                  <td>${m.model}</td>
                  <td>${m.version}</td>
                  <td>${m.role ?? 'production'}</td>
                  <td class="num">${m.trafficPercent === undefined ? '–' : `${m.trafficPercent} %`}</td>
                  <td>${m.variant ?? '–'}</td>
                  <td>${m.backend ?? '–'}</td>
                </tr>`,
            ),
          )
    }
    <h2>Shadows</h2>
    ${shadowsSection(thing)}
    <h2>Guardrails</h2>
    ${guardrailsSection(thing)}
    <h2>Serving health</h2>
    ${
      thing.health.length === 0
        ? muted('No serving figures reported.')
        : table(
            html`id="health"`,
            ['Model', 'Version', ...SERVING_COLUMNS],
            thing.health.map(
              (h) =>
                html`<tr>
                  <td>${h.model}</td>
                  <td>${h.version}</td>
                  <td class="num">${h.requests}</td>
                  <td class="num">${h.errors}</td>
                  <td class="num">${percent(h.errors, h.requests)}</td>
                  <td class="num">${millis(h.p50Ms)}</td>
                  <td class="num">${millis(h.p99Ms)}</td>
                </tr>`,
            ),
          )
    }
    <h2 id="drift">Drift</h2>
    ${driftSection(thing)}
    <h2>Recent deployments</h2>
    ${
      executions.length === 0
        ? muted('None.')
        : table(
            html`id="executions"`,
            ['Deployment', 'Status', num('Wave'), 'Previous version', 'Details', 'Updated'],
            [...executions].reverse().map(
              (e) =>
                html`<tr>
                  <td>
                    <a href="/ui/deployments/${pathPart(e.jobId)}">${e.jobId}</a
                    >${e.retry > 0 ? ` (retry ${e.retry})` : ''}
                  </td>
                  <td>${badge(e.status)}</td>
                  <td class="num">${e.wave ?? '–'}</td>
                  <td>${e.previousVersion ?? '–'}</td>
                  <td>${details(e.statusDetails)}</td>
                  <td>${ago(e.lastUpdatedMs, nowMs)}</td>
                </tr>`,
            ),
          )
    }
    <h2>Recent events</h2>
    ${
      events.length === 0
        ? muted('None in the recent event log.')
        : table(
            html`id="events"`,
            [num('Id'), 'When', 'Event', 'Deployment', 'Data'],
            [...events].reverse().map(
              (e) =>
                html`<tr>
                  <td class="num">${e.id}</td>
                  <td>${ago(e.atMs, nowMs)}</td>
                  <td>${e.type}</td>
                  <td>
                    ${e.deploymentId === undefined ? '–' : html`<a href="/ui/deployments/${pathPart(e.deploymentId)}">${e.deploymentId}</a>`}
                  </td>
                  <td>${details(e.data ?? {})}</td>
                </tr>`,
            ),
          )
    }`;
}
