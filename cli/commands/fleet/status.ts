import { stderr, stdout } from 'node:process';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Command } from 'commander';
import type { DeploymentView } from '../../../fleet/index.js';
import { print, printJson, table } from '../../output.js';
import { type ClientOptions, FleetClient, addClientOptions } from './client.js';
import { printDeployment, wavesLine } from './print.js';

export const WATCH_INTERVAL_MS = 1_000; // milliseconds between redraws of --watch and checks of --wait

/** Ended, or (a continuous deployment, to a dynamic group) every thing in it so far has ended. */
export function isSettled(d: DeploymentView): boolean {
  if (d.state !== 'ACTIVE') return true;
  const c = d.jobProcessDetails;
  return (
    d.continuous && d.executions.length > 0 && (c.numberOfQueuedThings ?? 0) + (c.numberOfInProgressThings ?? 0) === 0
  );
}

/** Polls until the deployment leaves ACTIVE; progress on stderr when asked. */
export async function waitForDeployment(client: FleetClient, id: string, progress: boolean): Promise<DeploymentView> {
  for (;;) {
    const d = await client.get<DeploymentView>(`/v1/deployments/${encodeURIComponent(id)}`);
    if (isSettled(d)) return d;
    if (progress && stderr.isTTY) {
      const c = d.jobProcessDetails;
      stderr.write(
        `\r\x1b[2K${id}: ${c.numberOfSucceededThings ?? 0}/${d.executions.length} succeeded, ${c.numberOfInProgressThings ?? 0} in progress, ${c.numberOfQueuedThings ?? 0} queued`,
      );
    }
    await sleep(WATCH_INTERVAL_MS);
  }
}

interface FleetEventView {
  readonly id: number;
  readonly atMs: number;
  readonly type: string;
  readonly thing?: string;
  readonly data?: Readonly<Record<string, unknown>>;
}

interface StatusOptions extends ClientOptions {
  watch?: boolean;
}

async function run(id: string | undefined, opts: StatusOptions): Promise<void> {
  const client = await FleetClient.from(opts);
  if (id === undefined) {
    const { deployments } = await client.get<{
      deployments: {
        id: string;
        state: string;
        model: string;
        version: string;
        counts: Record<string, number>;
        createdAt: string;
      }[];
    }>('/v1/deployments');
    if (opts.json === true) printJson({ deployments });
    else if (deployments.length === 0) print('no deployments');
    else {
      print(
        table(
          ['DEPLOYMENT', 'STATE', 'MODEL', 'THINGS', 'SUCCEEDED', 'FAILED', 'CREATED'],
          deployments.map((d) => [
            d.id,
            d.state,
            `${d.model}@${d.version}`,
            Object.values(d.counts).reduce((a, b) => a + b, 0),
            d.counts.SUCCEEDED ?? 0,
            (d.counts.FAILED ?? 0) + (d.counts.REJECTED ?? 0) + (d.counts.TIMED_OUT ?? 0),
            d.createdAt,
          ]),
        ),
      );
    }
    return;
  }
  const path = `/v1/deployments/${encodeURIComponent(id)}`;
  for (let last = ''; ;) {
    const d = await client.get<DeploymentView>(path);
    const text = JSON.stringify({
      ...d,
      rollout:
        d.rollout === null
          ? null
          : {
              ...d.rollout,
              waves: d.rollout.waves.map((w) => ({
                ...w,
                bakeRemainingMs: Math.ceil((w.bakeRemainingMs ?? 0) / 1000),
              })),
            },
    });
    if (text !== last) {
      const tty = stdout.isTTY;
      if (opts.json === true) printJson(d);
      else if (opts.watch === true && !tty)
        print(wavesLine(d)); // plain lines for logs and pipes
      else {
        // On a terminal the table is redrawn in place: home, draw, clear what is left of the last frame.
        if (opts.watch === true) stdout.write('\x1b[H\x1b[2J');
        printDeployment(d);
      }
      last = text;
    }
    if (opts.watch !== true || isSettled(d)) return;
    await sleep(WATCH_INTERVAL_MS);
  }
}

export function register(fleet: Command): void {
  addClientOptions(fleet.command('status').description("deployments, or one deployment's executions"))
    .argument('[deployment]')
    .option('--watch', 'redraw as it changes, until the deployment ends')
    .action(run);
  addClientOptions(fleet.command('cancel').description('cancel a deployment: what has not ended is CANCELED'))
    .argument('<deployment>')
    .option('--rollback', 'also roll the devices that switched back to the version each ran before')
    .action(async (id: string, opts: ClientOptions & { rollback?: boolean }) => {
      const d = await (
        await FleetClient.from(opts)
      ).post<DeploymentView>(
        `/v1/deployments/${encodeURIComponent(id)}/cancel${opts.rollback === true ? '?rollback=true' : ''}`,
      );
      if (opts.json === true) printJson(d);
      else printDeployment(d);
    });
  addClientOptions(fleet.command('events').description("a deployment's events, oldest first"))
    .argument('<deployment>')
    .option('--follow', 'keep printing new events until the deployment ends')
    .action(async (id: string, opts: ClientOptions & { follow?: boolean }) => {
      const client = await FleetClient.from(opts);
      const path = `/v1/deployments/${encodeURIComponent(id)}`;
      for (let after = 0; ;) {
        const { events } = await client.get<{ events: FleetEventView[] }>(`${path}/events?after=${after}`);
        for (const e of events) {
          if (opts.json === true) print(JSON.stringify(e));
          else
            print(
              `${new Date(e.atMs).toISOString()}  ${e.type.padEnd(22)}  ${e.thing ?? '-'}  ${JSON.stringify(e.data ?? {})}`,
            );
          after = e.id;
        }
        if (events.length > 0) continue;
        if (opts.follow !== true || (await client.get<DeploymentView>(path)).state !== 'ACTIVE') return;
        await sleep(WATCH_INTERVAL_MS);
      }
    });
}
