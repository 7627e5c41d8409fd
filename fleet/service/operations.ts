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

const log = logger('fleet.service');

/** What the operator asks of `fleet serve` (through fleet/api/): store an artifact, deploy, cancel. */
export class FleetOperations {
  constructor(
    private readonly store: FleetStore,
    private readonly blobs: BlobStore,
    private readonly executions: StoreExecutions,
    private readonly notify: (thing: string) => Promise<void>,
    private readonly dataDir: string,
    private readonly trustedKeys: readonly string[],
    private readonly now: () => number,
  ) {}

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
      executions.filter((e) => e.status === 'QUEUED' && e.artifact !== undefined).map((e) => e.thing),
    );
    return deployment;
  }

  /** CancelJob: what has not ended is CANCELED, then the deployment; devices are told. */
  async cancel(id: string, reason = 'canceled by the operator'): Promise<DeploymentRecord> {
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
    const canceled = await this.store.setDeploymentState(id, deployment.versionNumber, 'CANCELED', this.now(), reason);
    await this.notifyAll(things);
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
