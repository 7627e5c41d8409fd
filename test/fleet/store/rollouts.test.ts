import { describe, expect, it } from 'vitest';
import type { FleetStore } from '../../../fleet/store/index.js';
import { artifactRecord, newDeployment } from '../../helpers/fleet-records.js';
import { storeKinds } from '../../helpers/fleet-stores.js';

/** The store's rollout half (waves, releases, retries, rollout state) on SQLite and PostgreSQL. */
const T0 = 1_700_000_000_000; // ms

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => {
      throw new Error('expected a rejection');
    },
    (error: unknown) => error,
  );
}

async function seeded(store: FleetStore, id: string) {
  const artifact = await store.putArtifact(artifactRecord(1));
  await store.createDeployment(
    {
      ...newDeployment(id, [artifact]),
      target: { things: ['a', 'b', 'c'] },
      waves: [
        { size: 1, bakeMs: 60_000 },
        { size: 2, bakeMs: 0 },
      ],
    },
    [
      { thing: 'a', status: 'QUEUED', artifact: artifact.sha256, wave: 0, released: false },
      { thing: 'b', status: 'QUEUED', artifact: artifact.sha256, wave: 1, released: false },
      { thing: 'c', status: 'QUEUED', artifact: artifact.sha256, wave: 1, released: false },
    ],
  );
  return artifact;
}

describe.each(storeKinds())('rollouts in the FleetStore on $name', (kind) => {
  it.skipIf(kind.skip)('writes waves with the deployment; a wave moves once per version (STORE_CONFLICT)', async () => {
    const store = await kind.open('waves');
    try {
      await seeded(store, 'd-w');
      const waves = await store.listWaves('d-w');
      expect(waves.map((w) => [w.wave, w.size, w.bakeMs, w.state, w.versionNumber])).toEqual([
        [0, 1, 60_000, 'PENDING', 1],
        [1, 2, 0, 'PENDING', 1],
      ]);
      const started = await store.transitionWave('d-w', 0, 1, {
        state: 'RELEASING',
        nowMs: T0,
        startedMs: T0,
        event: { type: 'wave.started', deploymentId: 'd-w', data: { wave: 0 } },
      });
      expect(started).toMatchObject({ state: 'RELEASING', versionNumber: 2, startedMs: T0 });
      // A second worker that read version 1 loses: the wave does not start twice.
      expect(await rejection(store.transitionWave('d-w', 0, 1, { state: 'RELEASING', nowMs: T0 }))).toMatchObject({
        code: 'STORE_CONFLICT',
        details: { current: { state: 'RELEASING', versionNumber: 2 } },
      });
      const baking = await store.transitionWave('d-w', 0, 2, {
        state: 'BAKING',
        nowMs: T0,
        bakeUntilMs: T0 + 60_000,
        figures: { succeeded: 1 },
      });
      expect(baking).toMatchObject({ bakeUntilMs: T0 + 60_000, figures: { succeeded: 1 } });
      expect((await store.deploymentEvents('d-w', 0, 10)).map((e) => e.type)).toEqual([
        'deployment.created',
        'wave.started',
      ]);
    } finally {
      await store.close();
    }
  });

  it.skipIf(kind.skip)(
    'holds executions until released; a release happens once, and never after the deployment left ACTIVE',
    async () => {
      const store = await kind.open('release');
      try {
        await seeded(store, 'd-r');
        expect(await store.thingExecutions('a', { pending: true })).toEqual([]);
        expect(await store.stalePending(T0 + 10 ** 9, 10)).toEqual([]);
        const [a] = await store.listExecutions('d-r');
        const released = await store.releaseExecutions('d-r', [a?.executionNumber ?? 0], T0 + 1);
        expect(released.map((e) => [e.thing, e.releasedMs])).toEqual([['a', T0 + 1]]);
        expect(await store.releaseExecutions('d-r', [a?.executionNumber ?? 0], T0 + 2)).toEqual([]);
        expect((await store.thingExecutions('a', { pending: true })).map((e) => e.thing)).toEqual(['a']);
        expect(await store.releasedSince('d-r', T0)).toBe(1);
        const d = await store.getDeployment('d-r');
        await store.setDeploymentState('d-r', d?.versionNumber ?? 0, 'ABORTED', T0 + 3, 'tripped', {
          abort: { scope: 'wave' },
          rollback: true,
        });
        const rest = (await store.listExecutions('d-r')).filter((e) => e.thing !== 'a').map((e) => e.executionNumber);
        expect(await store.releaseExecutions('d-r', rest, T0 + 4)).toEqual([]);
        expect((await store.getDeployment('d-r'))?.rollout).toEqual({ abort: { scope: 'wave' }, rollback: true });
        expect((await store.rolloutsToDrive()).map((x) => x.id)).toEqual(['d-r']);
        const after = await store.getDeployment('d-r');
        await store.setRolloutState(
          'd-r',
          after?.versionNumber ?? 0,
          { ...after?.rollout, rollbackDone: true },
          T0 + 5,
        );
        expect(await store.rolloutsToDrive()).toEqual([]);
        expect(await rejection(store.setRolloutState('d-r', after?.versionNumber ?? 0, {}, T0 + 6))).toMatchObject({
          code: 'STORE_CONFLICT',
        });
      } finally {
        await store.close();
      }
    },
  );

  it.skipIf(kind.skip)('adds a retry once: a second insert of the same retry is a no-op', async () => {
    const store = await kind.open('retry');
    try {
      const artifact = await seeded(store, 'd-t');
      const retry = { thing: 'a', status: 'QUEUED' as const, artifact: artifact.sha256, wave: 0, retry: 1 };
      const added = await store.addRetry('d-t', retry, T0);
      expect(added).toMatchObject({ thing: 'a', retry: 1, status: 'QUEUED', releasedMs: T0, wave: 0 });
      expect(await store.addRetry('d-t', retry, T0 + 1)).toBeUndefined();
      expect((await store.listExecutions('d-t')).filter((e) => e.thing === 'a').map((e) => e.retry)).toEqual([0, 1]);
      expect(await store.findExecution('a', 'd-t')).toMatchObject({ retry: 1 });
    } finally {
      await store.close();
    }
  });
});
