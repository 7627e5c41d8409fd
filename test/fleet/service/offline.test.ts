import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DeploymentView } from '../../../fleet/index.js';
import { startAgent, waitFor } from '../../helpers/agent.js';
import { startBroker, type TestBroker } from '../../helpers/broker.js';
import { runCli } from '../../helpers/cli.js';
import { startFleet, type FleetProcess } from '../../helpers/fleet.js';
import { suiteTmpDir } from '../../helpers/tmp.js';
import { agentArgs, cnnArtifact, inferCnnVersion, signingKeys, type Keys } from '../../helpers/signed-artifacts.js';
import { storeKinds } from '../../helpers/fleet-stores.js';

const SETTLE_MS = 60_000; // ms for a real agent to download, self-test and switch
const TOKEN = 'fleet-test-token';

let broker: TestBroker;
let tmp: { dir: string; dispose: () => Promise<void> };
let keys: Keys;
let artifact: string;
let tokenFile: string;

beforeAll(async () => {
  broker = await startBroker();
  tmp = await suiteTmpDir('outpost-fleet-offline-');
  keys = await signingKeys(tmp.dir, 'fleet');
  artifact = await cnnArtifact(join(tmp.dir, 'a1'), '1.0.0', keys);
  tokenFile = join(tmp.dir, 'token');
  await writeFile(tokenFile, `${TOKEN}\n`);
}, 120_000);

afterAll(async () => {
  await broker.stop();
  await tmp.dispose();
});

describe.each(storeKinds())('a device offline at deploy time, the fleet SIGKILLed and restarted ($name)', (kind) => {
  it.skipIf(kind.skip)(
    'gets the model when it comes back, and the deployment shows SUCCEEDED',
    { timeout: 180_000 },
    async () => {
      const db = await kind.url('offline');
      const dataDir = join(tmp.dir, `fleet-${kind.name}`);
      const args = [
        '--broker',
        broker.urls.tcp,
        '--db',
        db,
        '--data-dir',
        dataDir,
        '--token-file',
        tokenFile,
        '--trust-key',
        keys.publicKeyPath,
      ];
      const thing = `offline-${kind.name}`;
      const cli = (fleet: FleetProcess, ...rest: string[]) =>
        runCli(['fleet', ...rest, '--fleet', fleet.url, '--token-file', tokenFile, '--json']);
      let fleet = await startFleet(args, { token: TOKEN });
      const agentDir = join(tmp.dir, `agent-${kind.name}`);
      let agent = startAgent(await agentArgs(broker, thing, keys.publicKeyPath), agentDir);
      try {
        // The device registers once, then drops off the network (SIGKILL: its last will says offline).
        await agent.http();
        const online = await waitFor(async () => {
          const t = await fleet.thing(thing);
          return t?.connected === true && t.target.profile !== undefined ? t : undefined;
        }, 20_000);
        expect(online.target).toMatchObject({ arch: 'x86_64' });
        expect(online.agentVersion).toBeDefined();
        await agent.kill();
        await waitFor(async () => ((await fleet.thing(thing))?.connected === false ? true : undefined), 20_000);

        const deployed = await cli(fleet, 'deploy', artifact, '--thing', thing, '--job-id', `offline-${kind.name}`);
        expect(deployed.code, deployed.stderr).toBe(0);
        const created = JSON.parse(deployed.stdout) as DeploymentView;
        expect(created).toMatchObject({ id: `offline-${kind.name}`, state: 'ACTIVE', model: 'cnn', version: '1.0.0' });
        expect(created.executions).toMatchObject([{ thing, status: 'QUEUED', versionNumber: 1, fit: 'exact' }]);

        // The fleet dies without a word; a new one starts on the same database and data directory.
        await fleet.kill();
        fleet = await startFleet(args, { token: TOKEN });
        const queued = await cli(fleet, 'status', created.id);
        expect((JSON.parse(queued.stdout) as DeploymentView).executions[0]?.status).toBe('QUEUED');

        // Now the device comes back.
        agent = startAgent(await agentArgs(broker, thing, keys.publicKeyPath), agentDir);
        const http = await agent.http();
        const done = await waitFor(
          async () => {
            const d = await fleet.deployment(created.id);
            return d.state === 'COMPLETED' ? d : undefined;
          },
          SETTLE_MS,
          () => `deployment to complete:\n${fleet.logs().slice(-3000)}\nagent:\n${agent.logs().slice(-3000)}`,
        );
        expect(done.executions).toMatchObject([
          {
            thing,
            status: 'SUCCEEDED',
            statusDetails: { model: 'cnn', version: '1.0.0', reasonCode: 'OK' },
            attempts: 1,
          },
        ]);
        expect(done.jobProcessDetails).toMatchObject({ numberOfSucceededThings: 1, numberOfQueuedThings: 0 });
        expect(await inferCnnVersion(http)).toBe('1.0.0');
        const status = await cli(fleet, 'status', created.id);
        expect((JSON.parse(status.stdout) as DeploymentView).state).toBe('COMPLETED');
      } finally {
        await agent.stop();
        await fleet.stop();
      }
    },
  );
});
