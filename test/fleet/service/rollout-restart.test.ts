import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../../helpers/agent.js';
import { startBroker, type TestBroker } from '../../helpers/broker.js';
import { runCli } from '../../helpers/cli.js';
import { startFleet, type FleetProcess } from '../../helpers/fleet.js';
import { LightDevice } from '../../helpers/fleet-device.js';
import { suiteTmpDir } from '../../helpers/tmp.js';
import { cnnArtifact, signingKeys, type Keys } from '../../helpers/signed-artifacts.js';
import { storeKinds } from '../../helpers/fleet-stores.js';

/**
 * `fleet serve` SIGKILLed while the canary bakes, then started again on the same database: the bake resumes with
 * the time that remained (its deadline is absolute, in the database), no wave starts twice, no device gets two jobs.
 */
const SETTLE_MS = 90_000; // ms for the rollout to finish
const TOKEN = 'rollout-restart-token';
const BAKE = '15s'; // long enough that the restart lands inside it

let broker: TestBroker;
let tmp: { dir: string; dispose: () => Promise<void> };
let keys: Keys;
let artifact: string;
let tokenFile: string;

beforeAll(async () => {
  broker = await startBroker();
  tmp = await suiteTmpDir('outpost-rollout-restart-');
  keys = await signingKeys(tmp.dir, 'fleet');
  artifact = await cnnArtifact(join(tmp.dir, 'a1'), '1.0.0', keys);
  tokenFile = join(tmp.dir, 'token');
  await writeFile(tokenFile, `${TOKEN}\n`);
}, 120_000);

afterAll(async () => {
  await broker.stop();
  await tmp.dispose();
});

describe.each(storeKinds())('a rollout across a SIGKILL of fleet serve mid-bake ($name)', (kind) => {
  it.skipIf(kind.skip)(
    'resumes the bake, starts each wave once, gives each device one job',
    { timeout: 180_000 },
    async () => {
      const args = [
        '--broker',
        broker.urls.tcp,
        '--db',
        await kind.url('restart'),
        '--data-dir',
        join(tmp.dir, `fleet-${kind.name}`),
        '--token-file',
        tokenFile,
        '--trust-key',
        keys.publicKeyPath,
      ];
      const things = [0, 1, 2, 3].map((i) => `k${i}-${kind.name}`);
      const id = `restart-${kind.name}`;
      let fleet: FleetProcess = await startFleet(args, { token: TOKEN });
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
        await waitFor(
          async () => ((await fleet.thing(things[3] ?? ''))?.connected === true ? true : undefined),
          20_000,
        );
        const deployed = await runCli([
          'fleet',
          'deploy',
          artifact,
          '--thing',
          things.join(','),
          '--job-id',
          id,
          '--strategy',
          `canary:1,bake=${BAKE}`,
          '--then',
          'linear:50%,every=1s',
          '--fleet',
          fleet.url,
          '--token-file',
          tokenFile,
          '--json',
        ]);
        expect(deployed.code, deployed.stderr).toBe(0);

        const baking = await waitFor(async () => {
          const d = await fleet.deployment(id);
          return d.rollout?.waves[0]?.state === 'BAKING' ? d : undefined;
        }, SETTLE_MS);
        const bakeUntil = baking.rollout?.waves[0]?.bakeUntil;
        expect(bakeUntil).not.toBeNull();
        expect(baking.rollout?.waves.slice(1).map((w) => w.state)).toEqual(['PENDING', 'PENDING']);

        await fleet.kill();
        fleet = await startFleet(args, { token: TOKEN });
        const resumed = await fleet.deployment(id);
        // The same absolute deadline: the time that remained, not a new bake.
        expect(resumed.rollout?.waves[0]?.bakeUntil).toBe(bakeUntil);

        const done = await waitFor(
          async () => {
            const d = await fleet.deployment(id);
            return d.state === 'COMPLETED' ? d : undefined;
          },
          SETTLE_MS,
          () => `the rollout to complete:\n${fleet.logs().slice(-3000)}`,
        );
        expect(done.rollout?.waves.map((w) => [w.devices, w.state, w.succeeded])).toEqual([
          [1, 'DONE', 1],
          [2, 'DONE', 2],
          [1, 'DONE', 1],
        ]);
        // The next wave started only once the bake's deadline had passed.
        expect(Date.parse(done.rollout?.waves[1]?.startedAt ?? '')).toBeGreaterThanOrEqual(Date.parse(bakeUntil ?? ''));
        expect(done.executions.map((e) => [e.status, e.attempts, e.retry])).toEqual(
          things.map(() => ['SUCCEEDED', 1, 0]),
        );
        // A device whose reply was lost with the killed worker retries its final update first.
        for (const device of devices) expect((await device.waitFor(1, SETTLE_MS)).map((r) => r.jobId)).toEqual([id]);
        const r = await fleet.api('GET', `/v1/deployments/${id}/events`);
        const events = (r.body as { events: { type: string; data: { wave?: number } }[] }).events;
        expect(events.filter((e) => e.type === 'wave.started').map((e) => e.data.wave)).toEqual([0, 1, 2]);
      } finally {
        for (const device of devices) await device.close();
        await fleet.stop();
      }
    },
  );
});
