import { describe, expect, it } from 'vitest';
import type { FleetStore } from '../../../fleet/store/index.js';
import { isOutpostError } from '../../../runtime/errors.js';
import { artifactRecord, newDeployment } from '../../helpers/fleet-records.js';
import { storeKinds } from '../../helpers/fleet-stores.js';

const T0 = 1_700_000_000_000; // ms
const SHADOW = {
  model: 'cnn',
  version: '2.0.0',
  percent: 50,
  compared: 40,
  shadowErrors: 0,
  agreement: 0.975,
  meanCosine: 0.999,
  maxAbsDiff: null,
  nonFiniteMismatches: 1,
};
const GUARDRAIL = {
  model: 'cnn',
  version: '1.0.0',
  requests: 10,
  errors: 1,
  errorRate: 0.1,
  p99Ms: 9,
  elapsedSeconds: 5,
  windowSeconds: 600,
};

describe.each(storeKinds())('FleetStore on $name', (kind) => {
  const open = async (label: string): Promise<FleetStore> => kind.open(label);

  it.skipIf(kind.skip)('registers a thing from its status; the last will keeps what it reported', async () => {
    const store = await open('registry');
    try {
      const first = await store.recordStatus({
        name: 'pi-1',
        connected: true,
        atMs: T0,
        target: { profile: 'arm64:cortex-a72', arch: 'arm64' },
        agentVersion: '0.1.0',
        onnxruntimeVersion: '1.30.0',
        models: [{ model: 'cnn', version: '1.0.0', variant: 'int8', backend: 'native' }],
        health: [{ model: 'cnn', version: '1.0.0', requests: 10, errors: 1, p50Ms: 2, p99Ms: 9 }],
        shadows: [SHADOW],
        guardrails: [GUARDRAIL],
      });
      expect(first).toMatchObject({ created: true, cameOnline: true });
      const will = await store.recordStatus({ name: 'pi-1', connected: false, atMs: T0 + 5_000 });
      expect(will).toMatchObject({ created: false, cameOnline: false });
      expect(will.thing).toEqual({
        name: 'pi-1',
        connected: false,
        firstSeenMs: T0,
        lastSeenMs: T0 + 5_000,
        target: { profile: 'arm64:cortex-a72', cpuProfile: 'arm64:cortex-a72', arch: 'arm64' },
        agentVersion: '0.1.0',
        onnxruntimeVersion: '1.30.0',
        models: [{ model: 'cnn', version: '1.0.0', variant: 'int8', backend: 'native' }],
        health: [{ model: 'cnn', version: '1.0.0', requests: 10, errors: 1, p50Ms: 2, p99Ms: 9 }],
        drift: [],
        shadows: [SHADOW],
        guardrails: [GUARDRAIL],
        attributes: {},
      });
      expect((await store.recordStatus({ name: 'pi-1', connected: true, atMs: T0 + 9_000 })).cameOnline).toBe(true);
      const attributed = await store.setAttributes('pi-1', { site: 'plant-3', rack: '7' }, T0);
      expect(attributed.attributes).toEqual({ site: 'plant-3', rack: '7' });
      expect((await store.setAttributes('pi-1', { rack: null }, T0)).attributes).toEqual({ site: 'plant-3' });
      // Registering by attributes alone: a thing never heard from.
      const fresh = await store.setAttributes('pi-2', { site: 'plant-4' }, T0);
      expect(fresh).toMatchObject({ name: 'pi-2', connected: false, lastSeenMs: 0, attributes: { site: 'plant-4' } });
      expect((await store.listThings()).map((t) => t.name)).toEqual(['pi-1', 'pi-2']);
      expect((await store.listThings(['pi-2', 'nope'])).map((t) => t.name)).toEqual(['pi-2']);
      expect(await store.getThing('nope')).toBeUndefined();
      // What reported after a time, oldest first, and the newest report of all (the dashboard's health refresh).
      await store.recordStatus({ name: 'pi-3', connected: true, atMs: T0 + 7_000 });
      expect(await store.thingsSeenAfter(T0 + 5_000, 10)).toEqual({ things: ['pi-3', 'pi-1'], latestMs: T0 + 9_000 });
      expect(await store.thingsSeenAfter(T0 + 5_000, 1)).toEqual({ things: ['pi-3'], latestMs: T0 + 9_000 });
      expect(await store.thingsSeenAfter(T0 + 9_000, 10)).toEqual({ things: [], latestMs: T0 + 9_000 });
    } finally {
      await store.close();
    }
  });

  it.skipIf(kind.skip)('keeps static and dynamic groups; a second group of one name is ALREADY_EXISTS', async () => {
    const store = await open('groups');
    try {
      await store.createGroup({ name: 'line-1', kind: 'static', things: ['b', 'a', 'a'], createdMs: T0 });
      await store.createGroup({
        name: 'pis',
        kind: 'dynamic',
        where: [
          { key: 'arch', value: 'arm64' },
          { key: 'attr.site', value: 'plant-3' },
        ],
        createdMs: T0,
      });
      expect(await store.getGroup('line-1')).toEqual({
        name: 'line-1',
        kind: 'static',
        things: ['a', 'b'],
        createdMs: T0,
      });
      expect((await store.listGroups()).map((g) => g.name)).toEqual(['line-1', 'pis']);
      await expect(store.createGroup({ name: 'pis', kind: 'static', things: [], createdMs: T0 })).rejects.toMatchObject(
        {
          code: 'ALREADY_EXISTS',
        },
      );
      expect(await store.getGroup('nope')).toBeUndefined();
    } finally {
      await store.close();
    }
  });

  it.skipIf(kind.skip)('stores artifacts once per sha256, found by stream id', async () => {
    const store = await open('artifacts');
    try {
      const a = artifactRecord(1);
      await store.putArtifact(a);
      await store.putArtifact(a);
      expect(await store.listArtifacts()).toEqual([a]);
      expect(await store.getArtifactByStream(a.streamId)).toEqual(a);
      expect(await store.getArtifact('0'.repeat(64))).toBeUndefined();
    } finally {
      await store.close();
    }
  });

  it.skipIf(kind.skip)(
    "keeps an artifact's files-layout stream, found by its own stream id, and adds it to an older row",
    async () => {
      const store = await open('delivery');
      try {
        const older = artifactRecord(2);
        const delivery = {
          streamId: `${older.streamId}-files`,
          bytes: 900,
          files: [
            { fileId: 0, sha256: 'e'.repeat(64), bytes: 300, role: 'delivery' as const },
            { fileId: 1, sha256: 'd'.repeat(64), bytes: 900, role: 'file' as const, path: 'variants/m.onnx' },
          ],
        };
        await store.putArtifact(older); // as stored before the files layout: archive only
        expect((await store.getArtifact(older.sha256))?.delivery).toBeUndefined();
        await store.putArtifact({ ...older, delivery }); // uploaded again: gains its files stream
        expect(await store.getArtifactByStream(delivery.streamId)).toEqual({ ...older, delivery });
        expect(await store.getArtifactByStream(older.streamId)).toEqual({ ...older, delivery });
        await store.putArtifact(older); // and keeps it
        expect((await store.getArtifact(older.sha256))?.delivery).toEqual(delivery);
      } finally {
        await store.close();
      }
    },
  );

  it.skipIf(kind.skip)('creates a deployment with its executions, documents and event in one transaction', async () => {
    const store = await open('deployments');
    try {
      const [x86, arm] = [artifactRecord(1), artifactRecord(2, 'arm64:cortex-a72')];
      await store.putArtifact(x86);
      await store.putArtifact(arm);
      const created = await store.createDeployment(newDeployment('d-1', [x86, arm]), [
        { thing: 'a', status: 'QUEUED', artifact: x86.sha256, fit: 'exact' },
        { thing: 'b', status: 'QUEUED' },
        { thing: 'c', status: 'REJECTED', statusDetails: { reason: 'nothing fits' } },
      ]);
      expect(created).toMatchObject({
        id: 'd-1',
        state: 'ACTIVE',
        versionNumber: 1,
        strategy: { type: 'all-at-once' },
      });
      expect(created.artifacts).toEqual([x86.sha256, arm.sha256]);
      const executions = await store.listExecutions('d-1');
      expect(executions.map((e) => [e.thing, e.status, e.artifact ?? null, e.versionNumber])).toEqual([
        ['a', 'QUEUED', x86.sha256, 1],
        ['b', 'QUEUED', null, 1],
        ['c', 'REJECTED', null, 1],
      ]);
      expect(await store.getDocument('d-1', arm.sha256)).toEqual({
        operation: 'outpost.deploy',
        streamId: arm.streamId,
      });
      expect(await store.countExecutions('d-1')).toEqual({ QUEUED: 2, REJECTED: 1 });
      expect((await store.thingExecutions('c', { pending: true })).length).toBe(0);
      await expect(store.createDeployment(newDeployment('d-1', [x86]), [])).rejects.toMatchObject({
        code: 'ALREADY_EXISTS',
      });
      const events = await store.eventsAfter(0, 10);
      expect(events.map((e) => e.type)).toEqual(['deployment.created']);
      // Late joiners: an existing (deployment, thing) is left alone.
      const joined = await store.addExecutions(
        'd-1',
        [
          { thing: 'a', status: 'QUEUED' },
          { thing: 'd', status: 'QUEUED' },
        ],
        T0,
      );
      expect(joined.map((e) => e.thing)).toEqual(['d']);
      expect((await store.listExecutions('d-1')).length).toBe(4);
    } finally {
      await store.close();
    }
  });

  it.skipIf(kind.skip)(
    'a transition applies only at the expected version: zero rows is STORE_CONFLICT with the current state',
    async () => {
      const store = await open('transitions');
      try {
        const artifact = artifactRecord(1);
        await store.putArtifact(artifact);
        await store.createDeployment(newDeployment('d-2', [artifact]), [
          { thing: 'a', status: 'QUEUED', artifact: artifact.sha256 },
        ]);
        const [queued] = await store.listExecutions('d-2');
        if (queued === undefined) throw new Error('no execution');
        const started = await store.transitionExecution(queued.executionNumber, 1, {
          status: 'IN_PROGRESS',
          statusDetails: { step: 'downloading' },
          nowMs: T0 + 1,
          startedMs: T0 + 1,
          deadlineMs: T0 + 60_000,
          countAttempt: true,
          event: { type: 'execution.in_progress', deploymentId: 'd-2', thing: 'a' },
        });
        expect(started).toMatchObject({
          status: 'IN_PROGRESS',
          versionNumber: 2,
          attempts: 1,
          startedMs: T0 + 1,
          deadlineMs: T0 + 60_000,
        });
        await expect(
          store.transitionExecution(queued.executionNumber, 1, {
            status: 'SUCCEEDED',
            statusDetails: {},
            nowMs: T0 + 2,
          }),
        ).rejects.toMatchObject({
          code: 'STORE_CONFLICT',
          details: { current: { status: 'IN_PROGRESS', versionNumber: 2 } },
        });
        expect(await store.dueExecutions(T0 + 59_999, 10)).toEqual([]);
        expect((await store.dueExecutions(T0 + 60_000, 10)).map((e) => e.thing)).toEqual(['a']);
        // Ten writers race from the same version: exactly one wins, the rest conflict, the version moved by one.
        const results = await Promise.allSettled(
          Array.from({ length: 10 }, (_, i) =>
            store.transitionExecution(queued.executionNumber, 2, {
              status: 'IN_PROGRESS',
              statusDetails: { step: 'downloading', writer: String(i) },
              nowMs: T0 + 3,
              countAttempt: true,
            }),
          ),
        );
        expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
        for (const r of results.filter((r) => r.status === 'rejected'))
          expect(isOutpostError(r.reason, 'STORE_CONFLICT')).toBe(true);
        const now = await store.findExecution('a', 'd-2');
        expect(now).toMatchObject({ versionNumber: 3, attempts: 2 });
        expect(await store.findExecution('a', 'd-2', now?.executionNumber)).toEqual(now);
        expect(await store.findExecution('b', 'd-2')).toBeUndefined();
      } finally {
        await store.close();
      }
    },
  );

  it.skipIf(kind.skip)('deployment state changes are conditional too', async () => {
    const store = await open('deployment_state');
    try {
      const artifact = artifactRecord(1);
      await store.putArtifact(artifact);
      await store.createDeployment(newDeployment('d-3', [artifact]), []);
      const done = await store.setDeploymentState('d-3', 1, 'COMPLETED', T0 + 10);
      expect(done).toMatchObject({ state: 'COMPLETED', versionNumber: 2, updatedMs: T0 + 10 });
      await expect(store.setDeploymentState('d-3', 1, 'CANCELED', T0)).rejects.toMatchObject({
        code: 'STORE_CONFLICT',
      });
      await expect(store.setDeploymentState('nope', 1, 'CANCELED', T0)).rejects.toMatchObject({
        code: 'DEPLOYMENT_NOT_FOUND',
      });
      expect((await store.listDeployments({ state: 'ACTIVE' })).length).toBe(0);
      expect((await store.listDeployments()).map((d) => d.id)).toEqual(['d-3']);
    } finally {
      await store.close();
    }
  });

  // Two connections on PostgreSQL (two workers); on SQLite one store, whose driver is synchronous: a second
  // connection in the same process would block the event loop on the first one's lock (one fleet serve per file).
  it.skipIf(kind.skip)('event ids only grow, and concurrent appends leave no gaps a reader could miss', async () => {
    const url = await kind.url('events');
    const { openStore } = await import('../../../fleet/store/index.js');
    const one = await openStore({ url });
    const two = kind.name === 'postgres' ? await openStore({ url }) : one;
    try {
      await Promise.all(
        Array.from({ length: 40 }, (_, i) =>
          (i % 2 === 0 ? one : two).appendEvent({ type: 'test.tick', data: { i } }, T0 + i),
        ),
      );
      const events = await one.eventsAfter(0, 100);
      expect(events).toHaveLength(40);
      const ids = events.map((e) => e.id);
      expect(ids).toEqual([...ids].sort((a, b) => a - b));
      expect(new Set(events.map((e) => (e.data as { i: number }).i)).size).toBe(40);
      const tail = await two.eventsAfter(ids[29] ?? 0, 100);
      expect(tail.map((e) => e.id)).toEqual(ids.slice(30));
    } finally {
      await one.close();
      if (two !== one) await two.close();
    }
  });
});
