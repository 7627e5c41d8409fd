import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jobsTopics } from '../../../device-agent/protocol/index.js';
import { type RunningFleet, serveFleet } from '../../../fleet/index.js';
import type { ArtifactRecord } from '../../../fleet/store/index.js';
import { waitFor } from '../../helpers/agent.js';
import { sampleCnnArtifact } from '../../helpers/artifacts.js';
import { startBroker, type TestBroker } from '../../helpers/broker.js';
import { runCli } from '../../helpers/cli.js';
import { LightDevice } from '../../helpers/fleet-device.js';
import { connectPeer, type Peer } from '../../helpers/mqtt.js';
import { suiteTmpDir } from '../../helpers/tmp.js';
import { storeKinds } from '../../helpers/fleet-stores.js';

/**
 * jobExecutionsRetryConfig and timeoutConfig under a rollout, on Mosquitto with SQLite and PostgreSQL: a FAILED
 * execution is tried again up to numberOfRetries (a new execution each time, as IoT Jobs does); an IN_PROGRESS one
 * past inProgressTimeoutInMinutes becomes TIMED_OUT and is retried by its own criteria. The service's clock is
 * moved forward (FleetServiceOptions.now) instead of waiting out minutes.
 */
const SETTLE_MS = 30_000; // ms for light devices to run their jobs
const REPLY_MS = 5_000; // ms for one Jobs reply

let broker: TestBroker;
let tmp: { dir: string; dispose: () => Promise<void> };
let artifactDir: string;

beforeAll(async () => {
  broker = await startBroker();
  tmp = await suiteTmpDir('outpost-rollout-retries-');
  artifactDir = (await sampleCnnArtifact(join(tmp.dir, 'a'))).dir;
}, 60_000);

afterAll(async () => {
  await broker.stop();
  await tmp.dispose();
});

/** A device that starts whatever it is offered and never reports again (a device that hung mid-install). */
async function startAndHang(peer: Peer, thing: string, count: number): Promise<void> {
  const accepted = jobsTopics.startNextAccepted(thing);
  await waitFor(
    async () => {
      await peer.publish(jobsTopics.startNext(thing), JSON.stringify({ clientToken: `t${count}` }));
      const replies = await peer.inbox.wait(accepted, 1, REPLY_MS).catch(() => []);
      // Distinct executions started: asking again returns the one IN_PROGRESS, which counts once.
      const started = new Set(
        replies.map(
          (r) => (JSON.parse(r.toString()) as { execution?: { executionNumber: number } }).execution?.executionNumber,
        ),
      );
      started.delete(undefined);
      return started.size >= count ? true : undefined;
    },
    SETTLE_MS,
    () => `${thing} to start execution ${count}`,
  );
}

describe.each(storeKinds())('retries and timeouts under a rollout ($name)', (kind) => {
  let fleet: RunningFleet;
  let offsetMs = 0;
  let artifact: ArtifactRecord;

  beforeAll(async () => {
    if (kind.skip) return;
    fleet = await serveFleet({
      brokerUrl: broker.urls.tcp,
      dataDir: join(tmp.dir, `fleet-${kind.name}`),
      db: await kind.url('retries'),
      http: { port: 0 },
      rollouts: { intervalMs: 200 },
      sweeper: { intervalMs: 200, nudgeAfterMs: 15_000 },
      now: () => Date.now() + offsetMs,
    });
    const { packArtifact } = await import('../../../runtime/artifact/index.js');
    const packed = await packArtifact(artifactDir, join(tmp.dir, `a-${kind.name}.tar.gz`));
    artifact = await fleet.service.operations.ingest(packed.path);
  }, 60_000);

  afterAll(async () => {
    if (!kind.skip) await fleet.close();
  });

  it.skipIf(kind.skip)(
    'refuses bad rollout settings with STRATEGY_INVALID naming the field, storing nothing',
    async () => {
      const thing = `any-${kind.name}`;
      await fleet.store.setAttributes(thing, { role: 'spare' }, Date.now());
      const before = (await fleet.store.listDeployments()).length;
      const post = async (extra: Record<string, unknown>) => {
        const r = await fetch(`${fleet.url}/v1/deployments`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ artifacts: [artifact.sha256], things: [thing], ...extra }),
        });
        return { status: r.status, body: (await r.json()) as { error: { code: string; details: { field: string } } } };
      };
      const cases: [Record<string, unknown>, string][] = [
        [{ strategy: 'canary:0' }, 'strategy'],
        [{ strategy: 'linear:25%' }, 'strategy'],
        [{ strategy: 'linear:25%,every=1m', then: 'linear:10%,every=1m' }, 'then'],
        [{ jobExecutionsRolloutConfig: { maximumPerMinute: 1001 } }, 'jobExecutionsRolloutConfig.maximumPerMinute'],
        [
          {
            abortConfig: {
              criteriaList: [{ failureType: 'ALL', thresholdPercentage: 101, minNumberOfExecutedThings: 1 }],
            },
          },
          'abortConfig.criteriaList.0.thresholdPercentage',
        ],
        [
          { jobExecutionsRetryConfig: { criteriaList: [{ failureType: 'REJECTED', numberOfRetries: 1 }] } },
          'jobExecutionsRetryConfig.criteriaList.0.failureType',
        ],
      ];
      for (const [extra, field] of cases) {
        const r = await post(extra);
        expect(r, JSON.stringify(extra)).toMatchObject({
          status: 400,
          body: { error: { code: 'STRATEGY_INVALID', details: { field } } },
        });
      }
      expect(await fleet.store.listDeployments()).toHaveLength(before);
      // The CLI refuses before it uploads anything.
      const cli = await runCli([
        'fleet',
        'deploy',
        artifactDir,
        '--thing',
        thing,
        '--rate',
        'maximumPerMinute=0',
        '--fleet',
        fleet.url,
      ]);
      expect(cli.code).toBe(1);
      expect(cli.stderr).toMatch(/rate\.maximumPerMinute: .*\[STRATEGY_INVALID\]/);
      const then = await runCli([
        'fleet',
        'deploy',
        artifactDir,
        '--thing',
        thing,
        '--then',
        'linear:5%,every=1s',
        '--fleet',
        fleet.url,
      ]);
      expect(then.stderr).toMatch(/\[STRATEGY_INVALID\]/);
    },
  );

  it.skipIf(kind.skip)('maximumPerMinute releases that many a minute (service clock), then the next ones', async () => {
    const things = [0, 1, 2, 3].map((i) => `paced${i}-${kind.name}`);
    const devices: LightDevice[] = [];
    try {
      for (const thing of things) {
        devices.push(
          await LightDevice.start({
            url: broker.urls.tcp,
            thing,
            dir: join(tmp.dir, 'devices'),
            target: { profile: 'x86_64:avx2', arch: 'x86_64' },
          }),
        );
      }
      await waitFor(async () => ((await fleet.store.listThings(things)).length === 4 ? true : undefined), REPLY_MS);
      const id = `rate-${kind.name}`;
      await fleet.service.operations.deploy({
        id,
        artifacts: [artifact.sha256],
        things,
        rollout: { jobExecutionsRolloutConfig: { maximumPerMinute: 2 } },
      });
      const succeeded = async (n: number) =>
        waitFor(async () => {
          const list = await fleet.store.listExecutions(id);
          return list.filter((e) => e.status === 'SUCCEEDED').length === n ? list : undefined;
        }, SETTLE_MS);
      const first = await succeeded(2);
      // The minute's budget is spent: the other two stay held until the clock moves on.
      expect(first.filter((e) => e.releasedMs === undefined)).toHaveLength(2);
      expect(await fleet.store.releasedSince(id, 0)).toBe(2);
      offsetMs += 61_000;
      await succeeded(4);
      // The controller completes it on its next pass.
      await waitFor(
        async () => ((await fleet.store.getDeployment(id))?.state === 'COMPLETED' ? true : undefined),
        SETTLE_MS,
      );
      const releases = (await fleet.store.deploymentEvents(id, 0, 100)).filter((e) => e.type === 'execution.released');
      expect(releases.map((e) => (e.data?.things as string[]).length)).toEqual([2, 2]);
      for (const device of devices) expect((await device.waitFor(1, SETTLE_MS)).map((r) => r.jobId)).toEqual([id]);
    } finally {
      for (const device of devices) await device.close();
    }
  });

  it.skipIf(kind.skip)('a thing that joins a dynamic group mid-rollout waits in the last wave', async () => {
    const site = `join-${kind.name}`;
    const names = ['j0', 'j1', 'j2'].map((n) => `${n}-${kind.name}`);
    for (const name of names) await fleet.store.setAttributes(name, { site }, Date.now());
    await fleet.store.createGroup({
      name: site,
      kind: 'dynamic',
      where: [{ key: 'attr.site', value: site }],
      createdMs: Date.now(),
    });
    const start = (thing: string) =>
      LightDevice.start({
        url: broker.urls.tcp,
        thing,
        dir: join(tmp.dir, 'devices'),
        target: { profile: 'x86_64:avx2', arch: 'x86_64' },
      });
    const devices = [await start(names[0] ?? ''), await start(names[1] ?? '')];
    try {
      await waitFor(
        async () => ((await fleet.store.listThings(names.slice(0, 2))).every((t) => t.connected) ? true : undefined),
        REPLY_MS,
      );
      const id = `join-${kind.name}`;
      await fleet.service.operations.deploy({
        id,
        artifacts: [artifact.sha256],
        group: site,
        rollout: { strategy: 'canary:1,bake=1h' },
      });
      await waitFor(
        async () => ((await fleet.store.listWaves(id))[0]?.state === 'BAKING' ? true : undefined),
        SETTLE_MS,
      );
      devices.push(await start(names[2] ?? ''));
      const joined = await waitFor(
        async () => (await fleet.store.findExecution(names[2] ?? '', id)) ?? undefined,
        SETTLE_MS,
      );
      expect(joined).toMatchObject({ wave: 1, status: 'QUEUED' });
      expect(joined.releasedMs).toBeUndefined();
      offsetMs += 61 * 60_000; // the canary's bake passes
      for (const device of devices) expect((await device.waitFor(1, SETTLE_MS)).map((r) => r.jobId)).toEqual([id]);
      expect((await fleet.store.getDeployment(id))?.state).toBe('ACTIVE'); // continuous: later joiners still get it
    } finally {
      for (const device of devices) await device.close();
    }
  });

  it.skipIf(kind.skip)('a FAILED execution is retried numberOfRetries times, each a new execution', async () => {
    const thing = `flaky-${kind.name}`;
    const device = await LightDevice.start({
      url: broker.urls.tcp,
      thing,
      dir: join(tmp.dir, 'devices'),
      target: { profile: 'x86_64:avx2', arch: 'x86_64' },
      outcome: 'fail',
    });
    try {
      await waitFor(async () => ((await fleet.store.getThing(thing))?.connected === true ? true : undefined), REPLY_MS);
      const id = `retry-${kind.name}`;
      await fleet.service.operations.deploy({
        id,
        artifacts: [artifact.sha256],
        things: [thing],
        rollout: { jobExecutionsRetryConfig: { criteriaList: [{ failureType: 'FAILED', numberOfRetries: 2 }] } },
      });
      const done = await waitFor(async () => {
        const d = await fleet.store.getDeployment(id);
        return d?.state === 'COMPLETED' ? d : undefined;
      }, SETTLE_MS);
      expect(done.state).toBe('COMPLETED'); // the last wave gates nothing: it ends with its figures
      const executions = await fleet.store.listExecutions(id);
      expect(executions.map((e) => [e.retry, e.status, e.attempts])).toEqual([
        [0, 'FAILED', 1],
        [1, 'FAILED', 1],
        [2, 'FAILED', 1],
      ]);
      expect((await device.waitFor(3, SETTLE_MS)).map((r) => r.status)).toEqual(['FAILED', 'FAILED', 'FAILED']);
      const events = await fleet.store.deploymentEvents(id, 0, 100);
      expect(events.filter((e) => e.type === 'execution.retried').map((e) => e.data?.retry)).toEqual([1, 2]);
    } finally {
      await device.close();
    }
  });

  it.skipIf(kind.skip)(
    'an IN_PROGRESS execution past its timeout is TIMED_OUT, and retried by its criteria',
    async () => {
      const thing = `hung-${kind.name}`;
      await fleet.store.setAttributes(thing, { role: 'hung' }, Date.now());
      const peer = await connectPeer(broker.urls.tcp, { mqtt5: false, clientId: thing });
      try {
        await peer.subscribe(`$aws/things/${thing}/jobs/#`);
        const id = `timeout-${kind.name}`;
        await fleet.service.operations.deploy({
          id,
          artifacts: [artifact.sha256],
          things: [thing],
          options: { inProgressTimeoutMs: 60_000 },
          rollout: {
            strategy: 'all-at-once',
            jobExecutionsRetryConfig: { criteriaList: [{ failureType: 'TIMED_OUT', numberOfRetries: 1 }] },
          },
        });
        await startAndHang(peer, thing, 1);
        offsetMs += 61 * 60_000; // past inProgressTimeoutInMinutes = 1
        await waitFor(async () => ((await fleet.store.listExecutions(id)).length === 2 ? true : undefined), SETTLE_MS);
        await startAndHang(peer, thing, 2);
        offsetMs += 61 * 60_000;
        const done = await waitFor(async () => {
          const d = await fleet.store.getDeployment(id);
          return d?.state === 'COMPLETED' ? d : undefined;
        }, SETTLE_MS);
        expect(done.state).toBe('COMPLETED');
        const executions = await fleet.store.listExecutions(id);
        expect(executions.map((e) => [e.retry, e.status])).toEqual([
          [0, 'TIMED_OUT'],
          [1, 'TIMED_OUT'],
        ]);
        expect(executions[0]?.statusDetails).toMatchObject({ reason: 'the in-progress timeout passed' });
      } finally {
        await peer.close();
      }
    },
  );
});
