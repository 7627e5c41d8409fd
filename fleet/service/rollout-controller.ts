import { isTerminal } from '../../device-agent/protocol/index.js';
import { isOutpostError, messageOf } from '../../runtime/errors.js';
import { logger } from '../../runtime/log.js';
import { type Trip, figures, healthy, ratePerMinute, releaseBudget, shouldRetry, tripped } from '../rollouts/gate.js';
import { type RolloutStrategy, isPaced, readRollout } from '../rollouts/plan.js';
import { latestByThing } from '../rollouts/waves.js';
import type { DeploymentRecord, ExecutionRecord, FleetStore, WaveChange, WaveRecord } from '../store/index.js';
import type { StoreExecutions } from './jobs-store.js';
import type { Rollbacks } from './rollback.js';

const log = logger('fleet.rollouts');

/**
 * The rollout controller: drives every paced deployment's waves from the database, on a timer and whenever one of
 * its executions ends. Idempotent and stateless — each pass re-reads the deployment, its waves and executions, and
 * every move is a conditional update (a wave's version, an execution's version, `released_ms IS NULL` while the
 * deployment is ACTIVE) — so any number of workers may run it, and one SIGKILLed mid-bake resumes on restart from
 * the absolute `bakeUntil` it persisted. Each pass: retries (jobExecutionsRetryConfig), abort criteria per wave and
 * over the deployment, then the first wave not DONE moves on (PENDING → RELEASING → RUNNING → BAKING → DONE).
 */
export interface RolloutControllerOptions {
  readonly intervalMs: number; // milliseconds between passes over every rollout
}

export const DEFAULT_ROLLOUTS: RolloutControllerOptions = Object.freeze({ intervalMs: 1_000 });
const MINUTE_MS = 60_000;

export class RolloutController {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private again = false;

  constructor(
    private readonly store: FleetStore,
    private readonly executions: StoreExecutions,
    private readonly rollbacks: Rollbacks,
    private readonly notify: (thing: string) => Promise<void>,
    private readonly now: () => number,
    private readonly options: RolloutControllerOptions = DEFAULT_ROLLOUTS,
  ) {}

  start(): void {
    this.timer = setInterval(() => this.poke(), this.options.intervalMs);
    this.timer.unref();
    this.poke();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.running;
  }

  /** Runs a pass now (or right after the one running): an execution ended, a deployment was created or canceled. */
  poke(): void {
    if (this.running !== undefined) {
      this.again = true;
      return;
    }
    this.running = this.pass()
      .catch((error: unknown) => log.warn({ error: messageOf(error) }, 'rollout pass failed; the next one retries'))
      .finally(() => {
        this.running = undefined;
        if (this.again && this.timer !== undefined) {
          this.again = false;
          this.poke();
        }
      });
  }

  /** One pass over every rollout; resolves when it is done (tests and `fleet cancel` wait on it). */
  async pass(): Promise<void> {
    for (const deployment of await this.store.rolloutsToDrive()) {
      try {
        if (deployment.state === 'ACTIVE') await this.drive(deployment);
        else await this.rollbacks.drive(deployment);
      } catch (error) {
        if (isOutpostError(error, 'STORE_CONFLICT')) continue; // another worker moved it: the next pass re-reads
        log.warn({ id: deployment.id, error: messageOf(error) }, 'rollout step failed; the next pass retries');
      }
    }
  }

  private async drive(deployment: DeploymentRecord): Promise<void> {
    const rollout = readRollout(deployment.strategy, deployment.id);
    if (!isPaced(rollout)) return;
    let all = await this.store.listExecutions(deployment.id);
    if (await this.retry(deployment, rollout, all)) all = await this.store.listExecutions(deployment.id);
    const latest = latestByThing(all);
    const waves = await this.store.listWaves(deployment.id);
    const trip = this.abortTrip(rollout, latest, waves, await this.drifting(deployment, rollout, latest));
    if (trip !== undefined) {
      await this.abort(deployment, trip);
      return;
    }
    for (const wave of waves) {
      const members = latest.filter((e) => (e.wave ?? 0) === wave.wave);
      // Things that joined later (a dynamic group) sit in the last wave: released once it is.
      if (wave.state !== 'PENDING' && wave.state !== 'CANCELED') await this.release(deployment, rollout, members);
      if (wave.state === 'DONE') continue;
      const moved = await this.advance(deployment, rollout, wave, members, waves);
      if (moved?.state !== 'DONE') return;
    }
    // Every wave DONE: the deployment is, unless it takes things that join later (a dynamic group).
    if (latest.every((e) => isTerminal(e.status)) && !(await this.continuous(deployment))) {
      await this.store.setDeploymentState(deployment.id, deployment.versionNumber, 'COMPLETED', this.now());
    }
  }

  /** One step of one wave; the wave as it now is (undefined: nothing to do yet). */
  private async advance(
    deployment: DeploymentRecord,
    rollout: RolloutStrategy,
    wave: WaveRecord,
    members: readonly ExecutionRecord[],
    waves: readonly WaveRecord[],
  ): Promise<WaveRecord | undefined> {
    const nowMs = this.now();
    const event = (type: string, data: Record<string, unknown> = {}) => ({
      type,
      deploymentId: deployment.id,
      data: { wave: wave.wave, ...data },
    });
    const move = (change: Omit<WaveChange, 'nowMs'>) =>
      this.store.transitionWave(deployment.id, wave.wave, wave.versionNumber, { ...change, nowMs });
    if (wave.state === 'PENDING') {
      const previous = waves[wave.wave - 1];
      if (previous !== undefined && previous.state !== 'DONE') return undefined;
      const started = await move({
        state: 'RELEASING',
        startedMs: nowMs,
        event: event('wave.started', { size: members.length }),
      });
      log.info({ id: deployment.id, wave: wave.wave, things: members.length }, 'wave started');
      await this.release(deployment, rollout, members);
      return this.advance(deployment, rollout, started, await this.membersNow(deployment.id, wave.wave), waves);
    }
    if (wave.state === 'RELEASING') {
      if (members.some((e) => e.releasedMs === undefined)) return undefined;
      return move({ state: 'RUNNING', event: event('wave.released') });
    }
    if (wave.state === 'RUNNING') {
      if (!members.every((e) => isTerminal(e.status))) return undefined;
      const f = figures(members);
      const last = wave.wave === waves.length - 1;
      if (!healthy(f, members.length) && rollout.abortConfig === undefined && !last) {
        // No abort criteria: the gate before the next wave is this one's health (every execution SUCCEEDED, each
        // device's bake passed). The last wave gates nothing: it ends, as an IoT job does, with its figures.
        await this.abort(deployment, { scope: 'wave', wave: wave.wave, figures: f, failurePercentage: failurePct(f) });
        return undefined;
      }
      if (wave.bakeMs <= 0)
        return move({ state: 'DONE', endedMs: nowMs, figures: { ...f }, event: event('wave.done', { ...f }) });
      const bakeUntilMs = nowMs + wave.bakeMs;
      return move({
        state: 'BAKING',
        endedMs: nowMs,
        bakeUntilMs,
        figures: { ...f },
        event: event('wave.baking', { ...f, bakeUntil: new Date(bakeUntilMs).toISOString() }),
      });
    }
    if (wave.state === 'BAKING') {
      if ((wave.bakeUntilMs ?? 0) > nowMs) return undefined;
      return move({ state: 'DONE', event: event('wave.done', { ...wave.figures }) });
    }
    return undefined;
  }

  private async membersNow(jobId: string, wave: number): Promise<ExecutionRecord[]> {
    return latestByThing(await this.store.listExecutions(jobId)).filter((e) => (e.wave ?? 0) === wave);
  }

  /** Releases held members of a started wave, at the rate controls' pace, and tells their things. */
  private async release(
    deployment: DeploymentRecord,
    rollout: RolloutStrategy,
    members: readonly ExecutionRecord[],
  ): Promise<void> {
    const held = members.filter((e) => e.releasedMs === undefined && e.status === 'QUEUED');
    if (held.length === 0) return;
    const nowMs = this.now();
    const all = latestByThing(await this.store.listExecutions(deployment.id));
    const rate = ratePerMinute(rollout.jobExecutionsRolloutConfig, {
      notified: all.filter((e) => e.releasedMs !== undefined).length,
      succeeded: all.filter((e) => e.status === 'SUCCEEDED').length,
    });
    const lastMinute = rate === undefined ? 0 : await this.store.releasedSince(deployment.id, nowMs - MINUTE_MS);
    const budget = releaseBudget(rate, lastMinute, held.length);
    if (budget === 0) return;
    const released = await this.store.releaseExecutions(
      deployment.id,
      held.slice(0, budget).map((e) => e.executionNumber),
      nowMs,
    );
    for (const e of released) if (e.artifact !== undefined) await this.notify(e.thing);
  }

  /** jobExecutionsRetryConfig: a FAILED or TIMED_OUT latest execution with retries left gets a new one. */
  private async retry(
    deployment: DeploymentRecord,
    rollout: RolloutStrategy,
    all: readonly ExecutionRecord[],
  ): Promise<boolean> {
    let any = false;
    for (const e of latestByThing(all)) {
      if (!shouldRetry(rollout.jobExecutionsRetryConfig, e.status, e.retry)) continue;
      const added = await this.store.addRetry(
        deployment.id,
        {
          thing: e.thing,
          status: 'QUEUED',
          retry: e.retry + 1,
          ...(e.artifact === undefined ? {} : { artifact: e.artifact }),
          ...(e.fit === undefined ? {} : { fit: e.fit }),
          ...(e.wave === undefined ? {} : { wave: e.wave }),
        },
        this.now(),
      );
      if (added === undefined) continue;
      any = true;
      log.info({ id: deployment.id, thing: e.thing, retry: added.retry, after: e.status }, 'execution retried');
      await this.notify(e.thing);
    }
    return any;
  }

  /** Things that took the deployment and now report its version drifting (read only for a DRIFT criterion). */
  private async drifting(
    deployment: DeploymentRecord,
    rollout: RolloutStrategy,
    latest: readonly ExecutionRecord[],
  ): Promise<ReadonlySet<string>> {
    if (!(rollout.abortConfig?.criteriaList ?? []).some((c) => c.failureType === 'DRIFT')) return new Set();
    const succeeded = latest.filter((e) => e.status === 'SUCCEEDED').map((e) => e.thing);
    if (succeeded.length === 0) return new Set();
    const things = await this.store.listThings(succeeded);
    const { model, version } = deployment;
    return new Set(
      things
        .filter((t) => t.drift.some((d) => d.model === model && d.version === version && d.drifting))
        .map((t) => t.name),
    );
  }

  /** abortConfig over each started wave, then over the whole deployment. */
  private abortTrip(
    rollout: RolloutStrategy,
    latest: readonly ExecutionRecord[],
    waves: readonly WaveRecord[],
    drifting: ReadonlySet<string>,
  ): Trip | undefined {
    const criteria = rollout.abortConfig?.criteriaList ?? [];
    if (criteria.length === 0) return undefined;
    for (const wave of waves) {
      if (wave.state === 'PENDING' || wave.state === 'CANCELED') continue;
      const members = latest.filter((e) => (e.wave ?? 0) === wave.wave);
      const trip = tripped(criteria, figures(members, drifting), 'wave', wave.wave);
      if (trip !== undefined) return trip;
    }
    return tripped(criteria, figures(latest, drifting), 'deployment');
  }

  /**
   * ABORTED (conditional: once), with the figures that tripped it; then what has not started is CANCELED (held
   * executions included, so a thing that connects later gets nothing), waves not DONE are CANCELED, and the devices
   * that switched are rolled back (rollback.ts).
   */
  private async abort(
    deployment: DeploymentRecord,
    trip: Omit<Trip, 'criteria'> & { criteria?: Trip['criteria'] },
  ): Promise<void> {
    const where = trip.scope === 'wave' ? `wave ${trip.wave ?? 0}` : 'the deployment';
    const reason =
      trip.criteria === undefined
        ? `${where} ended unhealthy: ${trip.figures.succeeded} of ${trip.figures.executed} succeeded (${trip.figures.failed} failed, ${trip.figures.guardrail} by a guardrail, ${trip.figures.rejected} rejected, ${trip.figures.timedOut} timed out)`
        : `abort criteria tripped on ${where}: ${trip.criteria.failureType} ${trip.failurePercentage.toFixed(1)}% of ${trip.figures.executed} executed ≥ ${trip.criteria.thresholdPercentage}% (minNumberOfExecutedThings ${trip.criteria.minNumberOfExecutedThings})`;
    const abort = { ...trip, failurePercentage: Math.round(trip.failurePercentage * 10) / 10 };
    const aborted = await this.store.setDeploymentState(
      deployment.id,
      deployment.versionNumber,
      'ABORTED',
      this.now(),
      reason,
      {
        ...deployment.rollout,
        abort,
        rollback: true,
      },
    );
    log.warn({ id: deployment.id, abort }, 'rollout aborted');
    await this.cancelPending(aborted.id, 'the rollout aborted');
    await this.rollbacks.drive(aborted);
  }

  /** QUEUED executions (held or released) CANCELED, waves not DONE CANCELED; released things are told. */
  async cancelPending(jobId: string, reason: string): Promise<void> {
    for (const e of await this.store.listExecutions(jobId)) {
      if (e.status !== 'QUEUED') continue;
      const moved = await this.executions.end(e, 'CANCELED', { reason });
      if (moved.ok && e.releasedMs !== undefined) await this.notify(e.thing);
    }
    for (const wave of await this.store.listWaves(jobId)) {
      if (wave.state === 'DONE' || wave.state === 'CANCELED') continue;
      await this.store
        .transitionWave(jobId, wave.wave, wave.versionNumber, {
          state: 'CANCELED',
          nowMs: this.now(),
          event: { type: 'wave.canceled', deploymentId: jobId, data: { wave: wave.wave, reason } },
        })
        .catch((error: unknown) => {
          if (!isOutpostError(error, 'STORE_CONFLICT')) throw error;
        });
    }
  }

  private async continuous(deployment: DeploymentRecord): Promise<boolean> {
    if (deployment.target.group === undefined) return false;
    return (await this.store.getGroup(deployment.target.group))?.kind === 'dynamic';
  }
}

function failurePct(f: ReturnType<typeof figures>): number {
  return f.executed === 0 ? 0 : (100 * (f.failed + f.rejected + f.timedOut)) / f.executed;
}
