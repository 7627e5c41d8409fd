import { randomBytes } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { OutpostError, fromFsError } from '../../runtime/errors.js';
import { logger } from '../../runtime/log.js';
import type { BlobStore } from '../artifacts/blobs.js';
import { ingestArtifact } from '../artifacts/ingest.js';
import { type DeploymentRequest, createDeployment } from '../deployments/create.js';
import { checkMove } from '../deployments/states.js';
import type { ArtifactRecord, DeploymentRecord, FleetStore } from '../store/index.js';
import type { StoreExecutions } from './jobs-store.js';
import type { RolloutController } from './rollout-controller.js';

const log = logger('fleet.service');

/** What the operator asks of `fleet serve` (through fleet/api/): store an artifact, deploy, cancel. */
export class FleetOperations {
  private rollouts: RolloutController | undefined;

  constructor(
    private readonly store: FleetStore,
    private readonly blobs: BlobStore,
    private readonly executions: StoreExecutions,
    private readonly notify: (thing: string) => Promise<void>,
    private readonly dataDir: string,
    private readonly trustedKeys: readonly string[],
    private readonly now: () => number,
  ) {}

  /** The controller that paces waves and makes rollbacks (set once by the service). */
  onRollout(controller: RolloutController): void {
    this.rollouts = controller;
  }

  /** A scratch path on the data directory's filesystem for an upload (the API streams the body there). */
  async uploadPath(): Promise<string> {
    const dir = join(this.dataDir, 'uploads');
    await mkdir(dir, { recursive: true }).catch((error: unknown) => Promise.reject(fromFsError(error, dir, 'write')));
    return join(dir, `${randomBytes(8).toString('hex')}.tar.gz`);
  }

  async ingest(source: string): Promise<ArtifactRecord> {
    const work = join(this.dataDir, 'work');
    await mkdir(work, { recursive: true });
    return ingestArtifact({
      source,
      blobs: this.blobs,
      store: this.store,
      trustedKeys: this.trustedKeys,
      workDir: work,
      nowMs: this.now(),
    });
  }

  /** Creates the deployment, then tells every thing that can start now (the rest hear when they connect). */
  async deploy(request: DeploymentRequest): Promise<DeploymentRecord> {
    const deployment = await createDeployment(this.store, request, this.now());
    const executions = await this.store.listExecutions(deployment.id);
    log.info({ id: deployment.id, things: executions.length }, 'deployment created');
    await this.notifyAll(
      executions
        .filter((e) => e.status === 'QUEUED' && e.artifact !== undefined && e.releasedMs !== undefined)
        .map((e) => e.thing),
    );
    this.rollouts?.poke(); // a paced rollout's first wave starts now
    return deployment;
  }

  /**
   * CancelJob: what has not ended is CANCELED, then the deployment; devices are told. With `rollback`, the devices
   * that switched return to the version they ran before, as after an abort (rollback.ts).
   */
  async cancel(id: string, reason = 'canceled by the operator', rollback = false): Promise<DeploymentRecord> {
    const deployment = await this.store.getDeployment(id);
    if (deployment === undefined)
      throw new OutpostError('DEPLOYMENT_NOT_FOUND', `no deployment ${id}`, { details: { id } });
    checkMove(id, deployment.state, 'CANCELED');
    const things: string[] = [];
    for (const execution of await this.store.listExecutions(id)) {
      if (execution.status !== 'QUEUED' && execution.status !== 'IN_PROGRESS') continue;
      const moved = await this.executions.end(execution, 'CANCELED', { reason });
      if (moved.ok) things.push(execution.thing);
    }
    const canceled = await this.store.setDeploymentState(
      id,
      deployment.versionNumber,
      'CANCELED',
      this.now(),
      reason,
      rollback ? { ...deployment.rollout, rollback: true, abort: { scope: 'operator', reason } } : undefined,
    );
    for (const wave of await this.store.listWaves(id)) {
      if (wave.state === 'DONE' || wave.state === 'CANCELED') continue;
      await this.store
        .transitionWave(id, wave.wave, wave.versionNumber, {
          state: 'CANCELED',
          nowMs: this.now(),
          event: { type: 'wave.canceled', deploymentId: id, data: { wave: wave.wave, reason } },
        })
        .catch(() => undefined); // the controller moved it meanwhile: it stops at CANCELED deployments anyway
    }
    await this.notifyAll(things);
    this.rollouts?.poke();
    return canceled;
  }

  private async notifyAll(things: readonly string[]): Promise<void> {
    const CONCURRENCY = 16; // notifications in flight at once
    const queue = [...new Set(things)];
    await Promise.all(
      Array.from({ length: Math.min(CONCURRENCY, queue.length) }, async () => {
        for (let thing = queue.shift(); thing !== undefined; thing = queue.shift()) await this.notify(thing);
      }),
    );
  }
}
