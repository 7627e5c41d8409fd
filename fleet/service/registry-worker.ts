import { logger } from '../../runtime/log.js';
import { newExecution } from '../deployments/create.js';
import { canChoose, chooseArtifact } from '../deployments/fit.js';
import { matches } from '../registry/query.js';
import { isPaced, readRollout } from '../rollouts/plan.js';
import { parseStatus } from '../registry/status.js';
import type { ArtifactRecord, FleetStore, ThingRecord } from '../store/index.js';
import type { StoreExecutions } from './jobs-store.js';

const log = logger('fleet.registry');

export interface RegistryStats {
  statusMessages: number;
  malformedStatus: number;
}

/**
 * The registry's side of `fleet serve`: every status message (retained on connect, the last will when a device drops)
 * updates the thing's record; then the thing's place in active deployments is brought up to date — it joins those
 * whose dynamic group it now matches, and gets its artifact chosen where the choice waited for its target — and, if
 * it came online or has something new to start, it is told (notify-next). A malformed message is counted, logged and
 * dropped: the service stays up.
 */
export class RegistryWorker {
  readonly stats: RegistryStats = { statusMessages: 0, malformedStatus: 0 };
  private readonly artifacts = new Map<string, ArtifactRecord>();

  constructor(
    private readonly store: FleetStore,
    private readonly executions: StoreExecutions,
    private readonly notify: (thing: string) => Promise<void>,
    private readonly now: () => number,
  ) {}

  async onStatus(topicThing: string, payload: Buffer): Promise<void> {
    this.stats.statusMessages++;
    const parsed = parseStatus(topicThing, payload, this.now());
    if (!parsed.ok) {
      this.stats.malformedStatus++;
      log.warn(
        { thing: topicThing, reason: parsed.reason, malformed: this.stats.malformedStatus },
        'malformed status message ignored',
      );
      return;
    }
    const { thing, created, cameOnline } = await this.store.recordStatus(parsed.update);
    if (created || cameOnline || !thing.connected) {
      const type = created ? 'thing.registered' : thing.connected ? 'thing.connected' : 'thing.disconnected';
      await this.store.appendEvent({ type, thing: thing.name, data: { target: thing.target } }, this.now());
    }
    const changed = await this.reconcile(thing);
    if (thing.connected && (cameOnline || changed)) await this.notify(thing.name);
  }

  /** Joins and artifact choices for one thing; true when it has something new it could start. */
  async reconcile(thing: ThingRecord): Promise<boolean> {
    const deployments = await this.store.listDeployments({ state: 'ACTIVE' });
    if (deployments.length === 0) return false;
    const existing = await this.store.thingExecutions(thing.name);
    let changed = false;
    for (const deployment of deployments) {
      const offered = await this.load(deployment.artifacts);
      const execution = existing.find((e) => e.jobId === deployment.id);
      if (execution === undefined) {
        if (deployment.target.group === undefined) continue;
        const group = await this.store.getGroup(deployment.target.group);
        if (group?.kind !== 'dynamic' || !matches(thing, group.where)) continue;
        // Under a paced rollout a joiner goes into the last wave, held until the controller releases it.
        const paced = isPaced(readRollout(deployment.strategy, deployment.id));
        const last = paced ? (await this.store.listWaves(deployment.id)).at(-1)?.wave : undefined;
        const joining = newExecution(thing, offered);
        const added = await this.store.addExecutions(
          deployment.id,
          [paced && joining.status === 'QUEUED' ? { ...joining, wave: last ?? 0, released: false } : joining],
          this.now(),
        );
        changed ||= added.some((e) => e.artifact !== undefined);
        log.info(
          { thing: thing.name, deployment: deployment.id },
          'thing joined a deployment through its dynamic group',
        );
        continue;
      }
      if (execution.status !== 'QUEUED' || execution.artifact !== undefined || !canChoose(thing.target, offered))
        continue;
      const fit = chooseArtifact(thing.target, offered);
      const resolved = await this.executions.resolve(
        execution,
        fit.ok
          ? { artifact: fit.artifact.sha256, fit: fit.fit }
          : { rejected: { reasonCode: 'ARTIFACT_TARGET_MISMATCH', reason: fit.reason } },
      );
      changed ||= resolved?.artifact !== undefined;
    }
    return changed;
  }

  private async load(shas: readonly string[]): Promise<ArtifactRecord[]> {
    const out: ArtifactRecord[] = [];
    for (const sha of shas) {
      let artifact = this.artifacts.get(sha);
      if (artifact === undefined) {
        artifact = await this.store.getArtifact(sha);
        if (artifact !== undefined) this.artifacts.set(sha, artifact);
      }
      if (artifact !== undefined) out.push(artifact);
    }
    return out;
  }
}
