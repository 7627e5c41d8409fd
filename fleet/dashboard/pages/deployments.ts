import type { DeploymentView, WaveView } from '../../api/views.js';
import type { DeploymentRecord, ExecutionRecord } from '../../store/index.js';
import { type Html, html, pathPart } from '../html.js';
import { ago, badge, bar, muted, num, table } from '../layout.js';
import { details } from './device.js';

/**
 * The deployments pages: the list (strategy, state, progress), one deployment (its waves as a timeline with counts
 * per status and the bake left, the abort's reason and figures, the devices rolled back, cancel and cancel-and-roll-
 * back), and the confirmation a cancel asks for (a page of its own: it works with a keyboard and without script).
 */
export interface DeploymentRow {
  readonly deployment: DeploymentRecord;
  readonly counts: Partial<Record<ExecutionRecord['status'], number>>;
}

const ENDED = ['SUCCEEDED', 'FAILED', 'REJECTED', 'CANCELED', 'TIMED_OUT', 'REMOVED'] as const;

export function deploymentsBody(rows: readonly DeploymentRow[], nowMs: number): Html {
  return html`<h1>Deployments</h1>
    ${
      rows.length === 0
        ? muted('No deployments yet.')
        : table(
            html`id="deployments"`,
            ['Deployment', 'Model', 'Strategy', 'State', 'Progress', num('Failed'), 'Created'],
            [...rows].reverse().map(({ deployment: d, counts }) => {
              const total = Object.values(counts).reduce((n, c) => n + c, 0);
              const ended = ENDED.reduce((n, s) => n + (counts[s] ?? 0), 0);
              const failed = (counts.FAILED ?? 0) + (counts.REJECTED ?? 0) + (counts.TIMED_OUT ?? 0);
              return html`<tr data-deployment="${d.id}">
                <th scope="row"><a href="/ui/deployments/${pathPart(d.id)}">${d.id}</a></th>
                <td>${d.model}@${d.version}</td>
                <td>${strategyOf(d)}</td>
                <td>${badge(d.state)}</td>
                <td>
                  <progress max="${Math.max(total, 1)}" value="${ended}" aria-label="ended executions">
                    ${ended}/${total}
                  </progress>
                  ${ended}/${total}
                </td>
                <td class="num">${failed}</td>
                <td>${ago(d.createdMs, nowMs)}</td>
              </tr>`;
            }),
          )
    }`;
}

function strategyOf(d: DeploymentRecord): string {
  const s = d.strategy;
  const text = typeof s.strategy === 'string' ? s.strategy : s.type;
  return typeof s.then === 'string' ? `${text} then ${s.then}` : text;
}

function seconds(ms: number): string {
  return ms >= 60_000 ? `${(ms / 60_000).toFixed(1)} min` : `${Math.round(ms / 1000)} s`;
}

function bake(w: WaveView): Html {
  if (w.bakeMs === 0) return html`no bake`;
  if (w.state === 'BAKING' && w.bakeUntil !== null && w.bakeRemainingMs !== null)
    return html`baking: <span class="bake" data-bake-until="${w.bakeUntil}">${seconds(w.bakeRemainingMs)} left</span> of
      ${seconds(w.bakeMs)}`;
  return html`bake ${seconds(w.bakeMs)}`;
}

function wave(w: WaveView): Html {
  const segments = [
    { name: 'succeeded', count: w.succeeded, cls: 'seg-succeeded' },
    { name: 'failed', count: w.failed, cls: 'seg-failed' },
    { name: 'in progress', count: w.inProgress, cls: 'seg-inProgress' },
    { name: 'queued', count: w.queued, cls: 'seg-queued' },
    { name: 'canceled', count: w.canceled, cls: 'seg-canceled' },
  ];
  return html`<li class="w-${w.state}" data-wave="${w.wave}">
    <strong>Wave ${w.wave}</strong> ${badge(w.state)} · ${w.devices} device${w.devices === 1 ? '' : 's'} · ${bake(w)}
    <div class="counts">
      <span data-count="queued">queued ${w.queued}</span><span data-count="inProgress">in progress ${w.inProgress}</span
      ><span data-count="succeeded">succeeded ${w.succeeded}</span><span data-count="failed">failed ${w.failed}</span
      ><span data-count="canceled">canceled ${w.canceled}</span
      ><span data-count="rolledBack">rolled back ${w.rolledBack}</span>
    </div>
    ${w.devices > 0 ? bar(`Wave ${w.wave} by status`, segments) : ''}
  </li>`;
}

/** An abort's figures, nested objects flattened to dotted keys. */
function flatten(value: unknown, prefix = ''): Array<readonly [string, string]> {
  if (value !== null && typeof value === 'object' && !Array.isArray(value))
    return Object.entries(value as Record<string, unknown>).flatMap(([k, v]) =>
      flatten(v, prefix === '' ? k : `${prefix}.${k}`),
    );
  return [[prefix, typeof value === 'string' ? value : JSON.stringify(value)]];
}

export function deploymentBody(d: DeploymentView, session: { cancel: boolean }): Html {
  const rollout = d.rollout;
  const c = d.jobProcessDetails;
  const active = d.state === 'ACTIVE';
  const id = pathPart(d.id);
  return html`<h1>Deployment ${d.id} ${badge(d.state)}</h1>
    <dl class="record" id="summary">
      <dt>Model</dt>
      <dd>${d.model}@${d.version}</dd>
      <dt>Strategy</dt>
      <dd>
        ${rollout === null ? d.strategy.type : rollout.strategy}${rollout?.then === null || rollout === null ? '' : ` then ${rollout.then}`}
      </dd>
      <dt>Targets</dt>
      <dd>${d.target.group === undefined ? `${(d.target.things ?? []).length} things` : `group ${d.target.group}`}</dd>
      <dt>Executions</dt>
      <dd>
        ${d.executions.length}: succeeded ${c.numberOfSucceededThings ?? 0}, failed
        ${(c.numberOfFailedThings ?? 0) + (c.numberOfRejectedThings ?? 0) + (c.numberOfTimedOutThings ?? 0)}, in
        progress ${c.numberOfInProgressThings ?? 0}, queued ${c.numberOfQueuedThings ?? 0}, canceled
        ${c.numberOfCanceledThings ?? 0}
      </dd>
      ${
        rollout?.rollbackOf === null || rollout === null
          ? ''
          : html`<dt>Rolls back</dt>
              <dd><a href="/ui/deployments/${pathPart(rollout.rollbackOf)}">${rollout.rollbackOf}</a></dd>`
      }
    </dl>
    ${
      active && session.cancel
        ? html`<div class="actions">
            <a class="button" href="/ui/deployments/${id}/cancel">Cancel…</a>
            <a class="button" href="/ui/deployments/${id}/cancel?rollback=true">Cancel and roll back…</a>
          </div>`
        : ''
    }
    ${
      rollout === null || rollout.waves.length === 0
        ? ''
        : html`<h2>Waves</h2>
            <ol class="waves" id="waves">
              ${rollout.waves.map(wave)}
            </ol>`
    }
    ${
      d.reason === null && rollout?.abort == null
        ? ''
        : html`<section class="abort" id="abort" aria-labelledby="abort-title">
            <h2 id="abort-title">${d.state === 'ABORTED' ? 'Aborted' : 'Ended'}</h2>
            <p id="abort-reason">${d.reason ?? ''}</p>
            ${
              rollout?.abort == null
                ? ''
                : html`<ul class="figures" id="abort-figures">
                    ${flatten(rollout.abort).map(([k, v]) => html`<li><span class="muted">${k}</span> ${v}</li>`)}
                  </ul>`
            }
          </section>`
    }
    ${
      rollout === null || (rollout.rolledBack.length === 0 && Object.keys(rollout.rollbacks).length === 0)
        ? ''
        : html`<h2>Rolled back</h2>
            <p id="rollbacks">
              ${Object.entries(rollout.rollbacks).map(([version, rb]) => html`to ${version}: <a href="/ui/deployments/${pathPart(rb)}">${rb}</a> `)}
            </p>
            <ul id="rolled-back">
              ${rollout.rolledBack.map((t) => html`<li><a href="/ui/things/${pathPart(t)}">${t}</a></li>`)}
            </ul>`
    }
    <h2>Executions</h2>
    ${table(
      html`id="executions"`,
      ['Thing', num('Wave'), 'Status', 'Artifact target', 'Previous version', 'Details'],
      d.executions.map(
        (e) =>
          html`<tr data-thing="${e.thing}">
            <th scope="row">
              <a href="/ui/things/${pathPart(e.thing)}">${e.thing}</a>${e.retry > 0 ? ` (retry ${e.retry})` : ''}
            </th>
            <td class="num">${e.wave ?? '–'}</td>
            <td>${badge(e.status)}${e.released ? '' : html` <span class="muted">held</span>`}</td>
            <td>${e.artifactTarget ?? '–'}</td>
            <td>${e.previousVersion ?? '–'}</td>
            <td>${details(e.statusDetails)}</td>
          </tr>`,
      ),
    )}`;
}

export function confirmBody(d: DeploymentView, rollback: boolean): Html {
  const switched = d.executions.filter((e) => e.status === 'SUCCEEDED').length;
  const open = d.executions.filter((e) => e.status === 'QUEUED' || e.status === 'IN_PROGRESS').length;
  return html`<h1>${rollback ? 'Cancel and roll back' : 'Cancel'} ${d.id}?</h1>
    <p>
      ${open} execution${open === 1 ? '' : 's'} not yet ended will be
      canceled.${
        rollback
          ? ` The ${switched} device${switched === 1 ? '' : 's'} that switched to ${d.version} will be rolled back to the version each ran before.`
          : ` The ${switched} device${switched === 1 ? '' : 's'} that switched keep ${d.version}.`
      }
    </p>
    <form method="post" action="/ui/deployments/${pathPart(d.id)}/cancel" class="actions">
      <input type="hidden" name="rollback" value="${rollback ? 'true' : 'false'}" />
      <button type="submit" class="danger" id="confirm" autofocus>
        ${rollback ? 'Yes, cancel and roll back' : 'Yes, cancel'}
      </button>
      <a href="/ui/deployments/${pathPart(d.id)}">No, go back</a>
    </form>`;
}
