import type { DeploymentView, GroupView, ThingView } from '../../../fleet/index.js';
import { formatBytes, print, table } from '../../output.js';

/** Human tables for `outpost fleet …` (JSON output prints the API's answer unchanged). */
export function ago(iso: string | null, now = Date.now()): string {
  if (iso === null) return 'never';
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h ago`;
  return `${Math.floor(s / 86_400)}d ago`;
}

export function printThings(things: readonly ThingView[]): void {
  if (things.length === 0) {
    print('no things yet: they appear when their agents first connect');
    return;
  }
  print(
    table(
      ['THING', 'STATUS', 'LAST SEEN', 'TARGET', 'AGENT', 'MODELS'],
      things.map((t) => [
        t.thingName,
        t.connected ? 'online' : 'offline',
        ago(t.lastSeen),
        t.target.profile ?? t.target.arch ?? '?',
        t.agentVersion ?? '?',
        t.models
          .filter((m) => m.role !== 'shadow')
          .map((m) => `${m.model}@${m.version}`)
          .join(' ') || '-',
      ]),
    ),
  );
}

export function printThing(t: ThingView & { executions?: readonly { jobId: string; status: string }[] }): void {
  print(`thing ${t.thingName}  ${t.connected ? 'online' : 'offline'}  last seen ${ago(t.lastSeen)}`);
  print(
    `target ${t.target.profile ?? '?'}${t.target.cpuProfile !== undefined && t.target.cpuProfile !== t.target.profile ? ` (CPU ${t.target.cpuProfile})` : ''}  arch ${t.target.arch ?? '?'}`,
  );
  print(`agent ${t.agentVersion ?? '?'}  onnxruntime ${t.onnxruntimeVersion ?? '?'}`);
  const attributes = Object.entries(t.attributes);
  print(`attributes ${attributes.length === 0 ? '-' : attributes.map(([k, v]) => `${k}=${v}`).join(' ')}`);
  print('');
  if (t.models.length > 0) {
    print(
      table(
        ['MODEL', 'VERSION', 'VARIANT', 'BACKEND', 'ROLE', 'REQUESTS', 'ERRORS', 'P50 MS', 'P99 MS'],
        t.models.map((m) => {
          const h = t.health.find((x) => x.model === m.model && x.version === m.version);
          return [
            m.model,
            m.version,
            m.variant ?? '-',
            m.backend ?? '-',
            m.role ?? '-',
            h?.requests ?? 0,
            h?.errors ?? 0,
            h?.p50Ms ?? '-',
            h?.p99Ms ?? '-',
          ];
        }),
      ),
    );
  } else print('no active models');
  if (t.executions !== undefined && t.executions.length > 0) {
    print('');
    print(
      table(
        ['DEPLOYMENT', 'STATUS'],
        t.executions.map((e) => [e.jobId, e.status]),
      ),
    );
  }
}

export function printGroups(groups: readonly GroupView[]): void {
  if (groups.length === 0) {
    print('no groups');
    return;
  }
  print(
    table(
      ['GROUP', 'KIND', 'MEMBERS'],
      groups.map((g) => [g.groupName, g.kind, g.things?.join(',') ?? g.where ?? '-']),
    ),
  );
}

/** `3m 20s`, `45s`, `-` for a bake left. */
export function remaining(ms: number | null): string {
  if (ms === null) return '-';
  const s = Math.ceil(ms / 1000);
  return s >= 60 ? `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, '0')}s` : `${s}s`;
}

export function strategyText(d: DeploymentView): string {
  const r = d.rollout;
  if (r === null) return d.strategy.type;
  return [r.strategy, ...(r.then === null ? [] : [`then ${r.then}`])].join(' ');
}

/** The waves as a table: wave, devices, queued / in progress / succeeded / failed / rolled back, bake remaining. */
export function wavesTable(d: DeploymentView): string | undefined {
  const waves = d.rollout?.waves ?? [];
  if (waves.length === 0) return undefined;
  return table(
    [
      'WAVE',
      'STATE',
      'DEVICES',
      'QUEUED',
      'IN PROGRESS',
      'SUCCEEDED',
      'FAILED',
      'CANCELED',
      'ROLLED BACK',
      'BAKE LEFT',
    ],
    waves.map((w) => [
      w.wave,
      w.state,
      w.devices,
      w.queued,
      w.inProgress,
      w.succeeded,
      w.failed,
      w.canceled,
      w.rolledBack,
      w.state === 'BAKING'
        ? remaining(w.bakeRemainingMs)
        : w.bakeMs > 0 && w.state === 'PENDING'
          ? `(${remaining(w.bakeMs)})`
          : '-',
    ]),
  );
}

/** The waves in one line (`wave 0 DONE 3/3 succeeded 0 failed | …`), or the executions' count without waves. */
export function wavesText(d: DeploymentView): string {
  const waves = (d.rollout?.waves ?? []).map(
    (w) =>
      `wave ${w.wave} ${w.state} ${w.succeeded}/${w.devices} succeeded ${w.failed} failed${w.rolledBack > 0 ? ` ${w.rolledBack} rolled back` : ''}${w.state === 'BAKING' ? ` bake ${remaining(w.bakeRemainingMs)} left` : ''}`,
  );
  const c = d.jobProcessDetails;
  const summary = `${c.numberOfSucceededThings ?? 0}/${d.executions.length} succeeded`;
  return waves.length > 0 ? waves.join(' | ') : summary;
}

/** One plain line for the waves (`status --watch` when stdout is not a terminal). */
export function wavesLine(d: DeploymentView): string {
  return `${new Date().toISOString()} ${d.id} ${d.state} ${wavesText(d)}`;
}

export function printDeployment(d: DeploymentView): void {
  const c = d.jobProcessDetails;
  print(
    `deployment ${d.id}  ${d.state}  ${d.model}@${d.version}  strategy ${strategyText(d)}${d.reason === null ? '' : `  (${d.reason})`}`,
  );
  if (d.rollout?.rollbackOf !== null && d.rollout?.rollbackOf !== undefined)
    print(`rollback of ${d.rollout.rollbackOf}`);
  const rollbacks = Object.entries(d.rollout?.rollbacks ?? {});
  if (rollbacks.length > 0) print(`rollbacks ${rollbacks.map(([v, id]) => `${id} (to ${v})`).join(', ')}`);
  print(
    `targets ${d.target.group !== undefined ? `group ${d.target.group}` : (d.target.things ?? []).join(',')}  artifacts ${d.artifacts.map((a) => a.target?.profile ?? '?').join(', ')}`,
  );
  print(
    `queued ${c.numberOfQueuedThings ?? 0}  in progress ${c.numberOfInProgressThings ?? 0}  succeeded ${c.numberOfSucceededThings ?? 0}  failed ${c.numberOfFailedThings ?? 0}  rejected ${c.numberOfRejectedThings ?? 0}  canceled ${c.numberOfCanceledThings ?? 0}  timed out ${c.numberOfTimedOutThings ?? 0}`,
  );
  const waves = wavesTable(d);
  if (waves !== undefined) {
    print('');
    print(waves);
  }
  print('');
  print(
    table(
      ['THING', 'STATUS', 'VERSION#', 'ARTIFACT', 'FIT', 'PREVIOUS', 'FETCHED', 'DETAILS'],
      d.executions.map((e) => [
        e.thing,
        e.status,
        e.versionNumber,
        e.artifactTarget ?? '-',
        e.fit ?? '-',
        e.previousVersion ?? '-',
        e.bytesFetched === null ? '-' : formatBytes(e.bytesFetched),
        Object.entries(e.statusDetails)
          .filter(([k]) => ['reason', 'reasonCode', 'step', 'variant', 'backend'].includes(k))
          .map(([k, v]) => `${k}=${v}`)
          .join(' ') || '-',
      ]),
    ),
  );
}
