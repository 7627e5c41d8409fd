import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../../helpers/agent.js';
import { sampleCnnArtifact } from '../../helpers/artifacts.js';
import { startBroker, type TestBroker } from '../../helpers/broker.js';
import { runCli } from '../../helpers/cli.js';
import { LightDevice } from '../../helpers/fleet-device.js';
import { startFleet, type FleetProcess } from '../../helpers/fleet.js';
import { suiteTmpDir } from '../../helpers/tmp.js';
import { storeKinds } from '../../helpers/fleet-stores.js';

const DEVICES = 10;
const PAD_BYTES = 4 * 1024 * 1024; // bytes: each download takes long enough to kill a worker in the middle of it
const SETTLE_MS = 120_000; // ms: the survivor takes over within the lease, then every device finishes

let broker: TestBroker;
let tmp: { dir: string; dispose: () => Promise<void> };

beforeAll(async () => {
  broker = await startBroker();
  tmp = await suiteTmpDir('outpost-fleet-workers-');
}, 30_000);

afterAll(async () => {
  await broker.stop();
  await tmp.dispose();
});

const [, postgres] = storeKinds();
if (postgres === undefined) throw new Error('store kinds');

describe('two fleet workers on one PostgreSQL and one broker', () => {
  it.skipIf(postgres.skip)(
    'one is SIGKILLed mid-deployment; the other finishes every execution, none counted twice',
    { timeout: 240_000 },
    async () => {
      const db = await postgres.url('workers');
      const dataDir = join(tmp.dir, 'fleet'); // the artifact store both workers serve from
      const args = (id: string) => ['--broker', broker.urls.tcp, '--db', db, '--data-dir', dataDir, '--worker-id', id];
      const a = await startFleet(args('worker-a'));
      const b = await startFleet(args('worker-b'));
      const workers: FleetProcess[] = [a, b];
      const devices: LightDevice[] = [];
      try {
        for (let i = 0; i < DEVICES; i++) {
          devices.push(
            await LightDevice.start({
              url: broker.urls.tcp,
              thing: `dev-${i}`,
              dir: join(tmp.dir, 'devices'),
              target: { profile: 'x86_64:avx2', arch: 'x86_64' },
              maxInFlightBlocks: 2,
            }),
          );
        }
        const artifact = (await sampleCnnArtifact(join(tmp.dir, 'a'), { padBytes: PAD_BYTES })).dir;
        await waitFor(async () => {
          const r = await a.api('GET', '/v1/things');
          return (r.body as { things: unknown[] }).things.length === DEVICES ? true : undefined;
        }, 15_000);
        const health = (await b.api('GET', '/v1/health')).body as { stats: unknown };
        expect(health.stats).toBeDefined();
        const things = devices.map((d) => d.thing).join(',');
        const cli = await runCli([
          'fleet',
          'deploy',
          artifact,
          '--thing',
          things,
          '--job-id',
          'two-workers',
          '--fleet',
          a.url,
          '--json',
        ]);
        expect(cli.code, cli.stderr).toBe(0);

        // Mid-deployment: downloads under way on both workers' things, none finished.
        await waitFor(async () => {
          const d = await b.deployment('two-workers');
          return (d.jobProcessDetails.numberOfInProgressThings ?? 0) >= DEVICES / 2 ? d : undefined;
        }, 30_000);
        const before = await b.deployment('two-workers');
        expect(before.jobProcessDetails.numberOfSucceededThings).toBeLessThan(DEVICES);
        await a.kill();

        const done = await waitFor(
          async () => {
            const d = await b.deployment('two-workers');
            return d.state === 'COMPLETED' ? d : undefined;
          },
          SETTLE_MS,
          () => `the survivor to finish:\n${b.logs().slice(-2000)}`,
        );
        expect(done.jobProcessDetails.numberOfSucceededThings).toBe(DEVICES);
        for (const e of done.executions) {
          expect(e.status).toBe('SUCCEEDED');
          // Started once each, whatever worker answered: no execution counted twice.
          expect(e.attempts).toBe(1);
        }
        for (const device of devices) {
          // A device whose final update the dead worker applied hears so when it retries (after a reply timeout).
          await device.waitFor(1, 30_000).catch(() => undefined);
          expect(
            device.received.map((r) => r.status),
            `${device.thing}: ${device.errors.join('; ')} ${JSON.stringify(done.executions.find((e) => e.thing === device.thing))}`,
          ).toEqual(['SUCCEEDED']);
        }
      } finally {
        for (const device of devices) await device.close();
        for (const w of workers) await w.kill();
      }
    },
  );
});
