import type { DeploymentView, GroupView, ThingView } from '../../../fleet/index.js';
import { print, table } from '../../output.js';

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

export function printDeployment(d: DeploymentView): void {
  const c = d.jobProcessDetails;
  print(
    `deployment ${d.id}  ${d.state}  ${d.model}@${d.version}  strategy ${d.strategy.type}${d.reason === null ? '' : `  (${d.reason})`}`,
  );
  print(
    `targets ${d.target.group !== undefined ? `group ${d.target.group}` : (d.target.things ?? []).join(',')}  artifacts ${d.artifacts.map((a) => a.target?.profile ?? '?').join(', ')}`,
  );
  print(
    `queued ${c.numberOfQueuedThings ?? 0}  in progress ${c.numberOfInProgressThings ?? 0}  succeeded ${c.numberOfSucceededThings ?? 0}  failed ${c.numberOfFailedThings ?? 0}  rejected ${c.numberOfRejectedThings ?? 0}  canceled ${c.numberOfCanceledThings ?? 0}  timed out ${c.numberOfTimedOutThings ?? 0}`,
  );
  print('');
  print(
    table(
      ['THING', 'STATUS', 'VERSION#', 'ARTIFACT', 'FIT', 'PREVIOUS', 'DETAILS'],
      d.executions.map((e) => [
        e.thing,
        e.status,
        e.versionNumber,
        e.artifactTarget ?? '-',
        e.fit ?? '-',
        e.previousVersion ?? '-',
        Object.entries(e.statusDetails)
          .filter(([k]) => ['reason', 'reasonCode', 'step', 'variant', 'backend'].includes(k))
          .map(([k, v]) => `${k}=${v}`)
          .join(' ') || '-',
      ]),
    ),
  );
}
