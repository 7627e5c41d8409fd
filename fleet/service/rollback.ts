import { createHash } from 'node:crypto';
import { isOutpostError } from '../../runtime/errors.js';
import { logger } from '../../runtime/log.js';
import { type DeploymentRequest, newExecution } from '../deployments/create.js';
import type { RolloutStrategy } from '../rollouts/plan.js';
import { latestByThing } from '../rollouts/waves.js';
import type { ArtifactRecord, DeploymentRecord, ExecutionRecord, FleetStore } from '../store/index.js';

const log = logger('fleet.rollouts');

/**
 * Rolls back the devices an aborted (or `cancel --rollback`) deployment switched: each returns to the version it ran
 * before, recorded on its execution at switch time (`previousVersion`), through the same Jobs + streams path — a
 * rollback deployment per previous version (`<id>-rb-<version>`), carrying the stored artifacts of that version, one
 * per target as any deployment. An agent that still has that version installed (with the same manifest) activates it
 * without fetching it again (docs/job-document.md, `artifact.manifestSha256`). Idempotent: the deployment ids are
 * fixed, an existing one only gains the things it lacks, and the rollout state records what was made.
 */
export type Deploy = (request: DeploymentRequest) => Promise<DeploymentRecord>;

export class Rollbacks {
  constructor(
    private readonly store: FleetStore,
    private readonly deploy: Deploy,
    private readonly notify: (thing: string) => Promise<void>,
    private readonly now: () => number,
  ) {}

  /** Things that switched (or may have: started, then canceled) and have a version to go back to. */
  static switched(executions: readonly ExecutionRecord[], version: string): ExecutionRecord[] {
    return latestByThing(executions).filter(
      (e) =>
        e.previousVersion !== undefined &&
        e.previousVersion !== version &&
        (e.status === 'SUCCEEDED' || (e.status === 'CANCELED' && e.startedMs !== undefined)),
    );
  }

  async drive(deployment: DeploymentRecord): Promise<void> {
    if (deployment.rollout.rollback !== true || deployment.rollout.rollbackDone === true) return;
    const executions = await this.store.listExecutions(deployment.id);
    const byVersion = new Map<string, string[]>();
    for (const e of Rollbacks.switched(executions, deployment.version)) {
      const version = e.previousVersion ?? '';
      byVersion.set(version, [...(byVersion.get(version) ?? []), e.thing]);
    }
    const rollbacks: Record<string, string> = { ...(deployment.rollout.rollbacks ?? {}) };
    const missing: Record<string, string[]> = {};
    for (const [version, things] of byVersion) {
      const artifacts = (await this.store.listArtifacts()).filter(
        (a) => a.name === deployment.model && a.version === version,
      );
      if (artifacts.length === 0) {
        missing[version] = things; // the fleet never stored it: nothing to send back
        continue;
      }
      rollbacks[version] = await this.ensure(deployment, version, things, artifacts);
    }
    // Done once nothing of the deployment can still switch (an IN_PROGRESS one may yet succeed).
    const done = executions.every((e) => e.status !== 'IN_PROGRESS' && e.status !== 'QUEUED');
    const next = {
      ...deployment.rollout,
      rollbacks,
      ...(Object.keys(missing).length === 0 ? {} : { rollbackMissing: missing }),
      ...(done ? { rollbackDone: true } : {}),
    };
    if (JSON.stringify(next) === JSON.stringify(deployment.rollout)) return;
    await this.store.setRolloutState(deployment.id, deployment.versionNumber, next, this.now());
    log.warn({ id: deployment.id, rollbacks, missing, done }, 'rollback deployments');
  }

  private async ensure(
    deployment: DeploymentRecord,
    version: string,
    things: readonly string[],
    artifacts: readonly ArtifactRecord[],
  ): Promise<string> {
    const id = rollbackId(deployment.id, version);
    const existing = await this.store.getDeployment(id);
    if (existing === undefined) {
      const strategy: RolloutStrategy = {
        type: 'rollback',
        strategy: 'all-at-once',
        phases: [{ kind: 'all-at-once' }],
        seed: id,
        rollbackOf: deployment.id,
      };
      try {
        await this.deploy({
          id,
          artifacts: artifacts.map((a) => a.sha256),
          things,
          strategy,
          options: {
            ...(deployment.options.keepVersions === undefined ? {} : { keepVersions: deployment.options.keepVersions }),
            ...(deployment.options.layout === undefined ? {} : { layout: deployment.options.layout }),
            notes: `rollback of ${deployment.id}`,
          },
        });
        return id;
      } catch (error) {
        if (!isOutpostError(error, 'ALREADY_EXISTS')) throw error; // another worker made it first
      }
    }
    const have = new Set((await this.store.listExecutions(id)).map((e) => e.thing));
    const add = await this.store.listThings(things.filter((t) => !have.has(t)));
    const added = await this.store.addExecutions(
      id,
      add.map((t) => newExecution(t, artifacts)),
      this.now(),
    );
    for (const e of added) if (e.artifact !== undefined) await this.notify(e.thing);
    return id;
  }
}

/** `<id>-rb-<version>`, within IoT Jobs' 64 characters (a hash of both when too long). */
export function rollbackId(id: string, version: string): string {
  const slug = version.replace(/[^a-zA-Z0-9_-]/g, '_');
  const plain = `${id}-rb-${slug}`;
  if (plain.length <= 64) return plain;
  const hash = createHash('sha256').update(`${id}\n${version}`).digest('hex').slice(0, 12);
  return `${id.slice(0, 64 - 4 - hash.length)}-rb-${hash}`;
}
