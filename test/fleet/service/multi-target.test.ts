import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DeploymentView, type RunningFleet, serveFleet } from '../../../fleet/index.js';
import { generateSigningKeys } from '../../../runtime/artifact/index.js';
import { waitFor } from '../../helpers/agent.js';
import { sampleCnnArtifact } from '../../helpers/artifacts.js';
import { startBroker, type TestBroker } from '../../helpers/broker.js';
import { runCli } from '../../helpers/cli.js';
import { LightDevice } from '../../helpers/fleet-device.js';
import { suiteTmpDir } from '../../helpers/tmp.js';

const SETTLE_MS = 30_000; // ms for light devices to fetch a small artifact

let broker: TestBroker;
let tmp: { dir: string; dispose: () => Promise<void> };
let fleet: RunningFleet;
const devices: LightDevice[] = [];
const keys = generateSigningKeys();

/** One device per kind of target the fleet must tell apart. */
const TARGETS = Object.freeze({
  'x86-box': { profile: 'x86_64:avx512-vnni', arch: 'x86_64' },
  pi4: { profile: 'arm64:cortex-a72', arch: 'arm64' },
  pi3: { profile: 'arm64:cortex-a53', arch: 'arm64' },
  orin: { profile: 'cuda:sm_87', cpuProfile: 'arm64:cortex-a78ae', arch: 'arm64' },
  xavier: { profile: 'cuda:sm_72', cpuProfile: 'arm64:carmel', arch: 'arm64' },
} as const);

beforeAll(async () => {
  broker = await startBroker();
  tmp = await suiteTmpDir('outpost-fleet-multi-');
  fleet = await serveFleet({ brokerUrl: broker.urls.tcp, dataDir: join(tmp.dir, 'fleet'), http: { port: 0 } });
  for (const [thing, target] of Object.entries(TARGETS)) {
    devices.push(await LightDevice.start({ url: broker.urls.tcp, thing, dir: join(tmp.dir, 'devices'), target }));
  }
  await waitFor(async () => ((await fleet.store.listThings()).length === devices.length ? true : undefined), 10_000);
}, 60_000);

afterAll(async () => {
  for (const device of devices) await device.close();
  await fleet.close();
  await broker.stop();
  await tmp.dispose();
});

async function artifact(label: string, profile: string, arch: 'x86_64' | 'arm64', version = '1.0.0'): Promise<string> {
  return (await sampleCnnArtifact(join(tmp.dir, label), { target: { profile, arch }, version, keys })).dir;
}

async function deploy(args: readonly string[]): Promise<DeploymentView> {
  const cli = await runCli(['fleet', 'deploy', ...args, '--fleet', fleet.url, '--json']);
  expect(cli.code, cli.stderr).toBe(0);
  return JSON.parse(cli.stdout) as DeploymentView;
}

async function settled(id: string): Promise<DeploymentView> {
  return waitFor(
    async () => {
      const cli = await runCli(['fleet', 'status', id, '--fleet', fleet.url, '--json']);
      const d = JSON.parse(cli.stdout) as DeploymentView;
      return d.state === 'COMPLETED' ? d : undefined;
    },
    SETTLE_MS,
    () => `deployment ${id} to complete`,
  );
}

describe('one deployment, one artifact per target', () => {
  it('gives every device the artifact that fits it best: exact profile, CPU profile, family', async () => {
    const [x86, a72, sm87] = [
      await artifact('x86', 'x86_64:avx2', 'x86_64'),
      await artifact('a72', 'arm64:cortex-a72', 'arm64'),
      await artifact('sm87', 'cuda:sm_87', 'arm64'),
    ];
    await runCli(['fleet', 'group', 'create', 'all', '--thing', Object.keys(TARGETS).join(','), '--fleet', fleet.url]);
    const created = await deploy([x86, a72, sm87, '--group', 'all', '--job-id', 'multi-1']);
    expect(created.artifacts.map((a) => a.target?.profile)).toEqual(['x86_64:avx2', 'arm64:cortex-a72', 'cuda:sm_87']);
    const done = await settled('multi-1');
    const chosen = Object.fromEntries(done.executions.map((e) => [e.thing, [e.status, e.artifactTarget, e.fit]]));
    expect(chosen).toEqual({
      'x86-box': ['SUCCEEDED', 'x86_64:avx2', 'family'],
      pi4: ['SUCCEEDED', 'arm64:cortex-a72', 'exact'],
      pi3: ['SUCCEEDED', 'arm64:cortex-a72', 'family'],
      orin: ['SUCCEEDED', 'cuda:sm_87', 'exact'],
      xavier: ['SUCCEEDED', 'cuda:sm_87', 'family'],
    });
    // What each device downloaded is the artifact it was given: the files-layout stream named after that artifact's
    // archive sha256 (fleet/artifacts/ingest.ts), each file checked by the downloader against its signed manifest.
    for (const device of devices) {
      const execution = done.executions.find((e) => e.thing === device.thing);
      const job = device.received.find((r) => r.jobId === 'multi-1');
      expect(job?.document?.artifact).toMatchObject({
        layout: 'files',
        streamId: `art-${execution?.artifact?.slice(0, 40) ?? '?'}-files`,
      });
    }
  });

  it('rejects a device nothing fits, naming its target and what was offered; a later joiner of a dynamic group gets its job', async () => {
    const a72 = await artifact('a72-v2', 'arm64:cortex-a72', 'arm64', '2.0.0');
    const sm87 = await artifact('sm87-v2', 'cuda:sm_87', 'arm64', '2.0.0');
    await runCli(['fleet', 'group', 'create', 'everyone-arm', '--where', 'arch=arm64', '--fleet', fleet.url]);
    const created = await deploy([a72, sm87, '--thing', Object.keys(TARGETS).join(','), '--job-id', 'multi-2']);
    const x86 = created.executions.find((e) => e.thing === 'x86-box');
    expect(x86?.status).toBe('REJECTED');
    expect(x86?.statusDetails).toEqual({
      reasonCode: 'ARTIFACT_TARGET_MISMATCH',
      reason: 'no artifact fits x86_64:avx512-vnni; offered: arm64:cortex-a72, cuda:sm_87',
    });
    const done = await settled('multi-2');
    expect(done.jobProcessDetails).toMatchObject({ numberOfSucceededThings: 4, numberOfRejectedThings: 1 });
    expect(devices[0]?.received.some((r) => r.jobId === 'multi-2')).toBe(false);

    // A dynamic group is evaluated again for things that report later.
    const v3 = await artifact('a72-v3', 'arm64:cortex-a72', 'arm64', '3.0.0');
    const group = await deploy([v3, '--group', 'everyone-arm', '--job-id', 'multi-3']);
    expect(group.executions.map((e) => e.thing).sort()).toEqual(['orin', 'pi3', 'pi4', 'xavier']);
    const late = await LightDevice.start({
      url: broker.urls.tcp,
      thing: 'pi-late',
      dir: join(tmp.dir, 'devices'),
      target: { profile: 'arm64:cortex-a76', arch: 'arm64' },
    });
    devices.push(late);
    const [job] = await late.waitFor(1, SETTLE_MS);
    expect(job).toMatchObject({ jobId: 'multi-3', status: 'SUCCEEDED' });
    // Continuous (a dynamic group): it stays ACTIVE, and the joiner's execution is there.
    const done3 = await waitFor(async () => {
      const cli = await runCli(['fleet', 'status', 'multi-3', '--fleet', fleet.url, '--json']);
      const d = JSON.parse(cli.stdout) as DeploymentView;
      return d.executions.find((e) => e.thing === 'pi-late')?.status === 'SUCCEEDED' ? d : undefined;
    }, SETTLE_MS);
    expect(done3).toMatchObject({ state: 'ACTIVE', continuous: true });
    expect(done3.executions.find((e) => e.thing === 'pi-late')).toMatchObject({ status: 'SUCCEEDED', fit: 'family' });
  });
});
