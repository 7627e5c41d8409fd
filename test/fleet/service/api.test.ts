import { cp, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { connectAsync, type MqttClient } from 'mqtt';
import { create } from 'tar';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jobsTopics } from '../../../device-agent/protocol/index.js';
import { type DeploymentView, type RunningFleet, serveFleet } from '../../../fleet/index.js';
import { OUTPOST_VERSION } from '../../../runtime/version.js';
import { waitFor } from '../../helpers/agent.js';
import { sampleCnnArtifact } from '../../helpers/artifacts.js';
import { startBroker, type TestBroker } from '../../helpers/broker.js';
import { runCli } from '../../helpers/cli.js';
import { LightDevice } from '../../helpers/fleet-device.js';
import { Inbox } from '../../helpers/mqtt.js';
import { suiteTmpDir } from '../../helpers/tmp.js';

const TOKEN = 'api-test-token';
const REPLY_MS = 5_000; // ms for one reply

let broker: TestBroker;
let tmp: { dir: string; dispose: () => Promise<void> };
let fleet: RunningFleet;
let tokenFile: string;
let artifact: string;
let device: LightDevice;

beforeAll(async () => {
  broker = await startBroker();
  tmp = await suiteTmpDir('outpost-fleet-api-');
  tokenFile = join(tmp.dir, 'token');
  await writeFile(tokenFile, TOKEN);
  fleet = await serveFleet({
    brokerUrl: broker.urls.tcp,
    dataDir: join(tmp.dir, 'fleet'),
    http: { port: 0, token: TOKEN },
  });
  artifact = (await sampleCnnArtifact(join(tmp.dir, 'a'))).dir;
  device = await LightDevice.start({
    url: broker.urls.tcp,
    thing: 'pi-a',
    dir: join(tmp.dir, 'devices'),
    target: { profile: 'arm64:cortex-a72', arch: 'arm64' },
  });
  await waitFor(async () => ((await fleet.store.getThing('pi-a')) === undefined ? undefined : true), REPLY_MS);
}, 60_000);

afterAll(async () => {
  await device.close();
  await fleet.close();
  await broker.stop();
  await tmp.dispose();
});

const cli = (...args: string[]) => runCli(['fleet', ...args, '--fleet', fleet.url, '--token-file', tokenFile]);
const json = async <T>(...args: string[]): Promise<T> => {
  const r = await cli(...args, '--json');
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as T;
};

async function health(): Promise<{ stats: Record<string, number> }> {
  const r = await fetch(`${fleet.url}/v1/health`, { headers: { authorization: `Bearer ${TOKEN}` } });
  return (await r.json()) as { stats: Record<string, number> };
}

describe('outpost fleet: the operator commands', () => {
  it('lists things and groups as tables and JSON, and sets attributes', async () => {
    const table = await cli('things');
    expect(table.stdout).toMatch(/^THING\s+STATUS\s+LAST SEEN\s+TARGET\s+AGENT\s+MODELS$/m);
    // A simulated device reports the agent's own version: the registry cannot tell it from a real agent.
    expect(table.stdout).toMatch(
      new RegExp(`^pi-a\\s+online\\s+\\S+ ago\\s+arm64:cortex-a72\\s+${OUTPOST_VERSION}`, 'm'),
    );
    const thing = await json<{ thingName: string; attributes: Record<string, string> }>(
      'thing',
      'pi-a',
      '--attr',
      'site=plant-3',
    );
    expect(thing).toMatchObject({ thingName: 'pi-a', attributes: { site: 'plant-3' } });
    await json('group', 'create', 'plant-3', '--where', 'attr.site=plant-3,arch=arm64');
    await json('group', 'create', 'line', '--thing', 'pi-a');
    const groups = await json<{ groups: { groupName: string; kind: string }[] }>('groups');
    expect(groups.groups.map((g) => [g.groupName, g.kind])).toEqual([
      ['line', 'static'],
      ['plant-3', 'dynamic'],
    ]);
    const members = await json<{ things: { thingName: string }[] }>('things', '--group', 'plant-3');
    expect(members.things.map((t) => t.thingName)).toEqual(['pi-a']);
    expect((await cli('groups')).stdout).toMatch(/^plant-3\s+dynamic\s+attr\.site=plant-3,arch=arm64$/m);
  });

  it('deploys to a group with --wait, shows the status table, and refuses to cancel what ended', async () => {
    const fixed = await json<DeploymentView>('deploy', artifact, '--group', 'line', '--job-id', 'api-0', '--wait');
    expect(fixed).toMatchObject({ state: 'COMPLETED', status: 'COMPLETED', continuous: false });
    const cancel = await cli('cancel', 'api-0');
    expect(cancel.code).toBe(1);
    expect(cancel.stderr).toMatch(/deployment api-0 is COMPLETED; it cannot become CANCELED \[INVALID_ARGUMENT\]/);
    const done = await json<DeploymentView>('deploy', artifact, '--group', 'plant-3', '--job-id', 'api-1', '--wait');
    // To a dynamic group: continuous, ACTIVE for things that join later; --wait returns once its members ended.
    expect(done).toMatchObject({
      id: 'api-1',
      state: 'ACTIVE',
      status: 'IN_PROGRESS',
      continuous: true,
      jobProcessDetails: { numberOfSucceededThings: 1 },
    });
    expect(done.executions[0]).toMatchObject({
      thing: 'pi-a',
      status: 'SUCCEEDED',
      versionNumber: 3,
      executionNumber: 2,
    });
    const list = await cli('status');
    expect(list.stdout).toMatch(/^api-1\s+ACTIVE\s+sample-cnn@1\.0\.0\s+1\s+1\s+0/m);
    const one = await cli('status', 'api-1');
    // The statusDetails a real agent sends on success: reasonCode OK, the serving line, variant and backend.
    expect(one.stdout).toMatch(
      /^pi-a\s+SUCCEEDED\s+3\s+any\s+any\s+1\.0\.0\s+[\d.]+ (?:B|KiB|MiB)\s+reasonCode=OK reason=sample-cnn@1\.0\.0 serving .* variant=fp32 backend=native$/m,
    );
    const ended = await json<DeploymentView>('cancel', 'api-1');
    expect(ended).toMatchObject({ state: 'CANCELED', executions: [{ thing: 'pi-a', status: 'SUCCEEDED' }] });
  });

  it('cancels a deployment whose device is away: QUEUED becomes CANCELED', async () => {
    await json('thing', 'pi-away', '--attr', 'site=elsewhere');
    const created = await json<DeploymentView>('deploy', artifact, '--thing', 'pi-away', '--job-id', 'api-2');
    expect(created.executions[0]?.status).toBe('QUEUED');
    const canceled = await json<DeploymentView>('cancel', 'api-2');
    expect(canceled).toMatchObject({ state: 'CANCELED', executions: [{ thing: 'pi-away', status: 'CANCELED' }] });
    expect(canceled.executions[0]?.statusDetails).toEqual({ reason: 'canceled by the operator' });
  });
});

describe('bad input: a clear error, nothing lost, the service stays up', () => {
  it('an artifact that fails verification is refused at fleet deploy, and nothing is stored', async () => {
    const tampered = join(tmp.dir, 'tampered');
    await cp(artifact, tampered, { recursive: true });
    await writeFile(join(tampered, 'labels.txt'), 'not the labels\n');
    const before = await fleet.store.listArtifacts();
    const blobsDir = join(tmp.dir, 'fleet', 'blobs', 'sha256');
    const blobs = async () => (await readdir(blobsDir, { recursive: true }).catch(() => [])).length;
    const blobsBefore = await blobs();
    const r = await cli('deploy', tampered, '--thing', 'pi-a');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/\[ARTIFACT_HASH_MISMATCH\]/);
    expect(await fleet.store.listArtifacts()).toEqual(before);
    // The service's own check too: the tampered artifact uploaded as an archive, and bytes that are no archive.
    const archive = join(tmp.dir, 'tampered.tar.gz');
    await create({ gzip: true, file: archive, cwd: tampered }, ['.']);
    const upload = (body: Buffer | string) =>
      fetch(`${fleet.url}/v1/artifacts`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` }, body });
    const refused = await upload(await readFile(archive));
    expect(refused.status).toBe(422);
    expect(((await refused.json()) as { error: { code: string } }).error.code).toBe('ARTIFACT_HASH_MISMATCH');
    const garbage = await upload('not a gzip');
    expect(garbage.status).toBe(400);
    expect(((await garbage.json()) as { error: { code: string } }).error.code).toBe('INVALID_ARGUMENT');
    expect(await fleet.store.listArtifacts()).toEqual(before);
    expect(await blobs()).toBe(blobsBefore);
    expect(await readdir(join(tmp.dir, 'fleet', 'uploads'))).toEqual([]);
  });

  it.each([
    [['--group', 'nope'], /no group nope; groups: line, plant-3 \[GROUP_NOT_FOUND\]/],
    [
      ['--thing', 'ghost-1,pi-a'],
      /unknown thing ghost-1: a thing appears when its agent first connects.* \[THING_NOT_FOUND\]/,
    ],
  ])('deploy %j: %s', async (target, message) => {
    const r = await cli('deploy', artifact, ...target);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(message);
  });

  it('an empty target set is TARGET_EMPTY', async () => {
    await json('group', 'create', 'nobody', '--where', 'attr.site=mars');
    const r = await cli('deploy', artifact, '--group', 'nobody');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/group nobody has no things matching it yet \[TARGET_EMPTY\]/);
  });

  it('a wrong token is UNAUTHORIZED; a fleet that is not there is FLEET_UNREACHABLE', async () => {
    const wrong = join(tmp.dir, 'wrong-token');
    await writeFile(wrong, 'not-the-token');
    const r = await runCli(['fleet', 'things', '--fleet', fleet.url, '--token-file', wrong]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/bearer token is not valid.*\[UNAUTHORIZED\]/);
    const gone = await runCli(['fleet', 'things', '--fleet', 'http://127.0.0.1:1']);
    expect(gone.stderr).toMatch(/is not answering.*\[FLEET_UNREACHABLE\]/);
  });

  it('malformed status messages and job requests are counted, logged and ignored; a device cannot report for another job', async () => {
    const peer: MqttClient = await connectAsync(broker.urls.tcp, { clientId: 'rogue', protocolVersion: 4 });
    const inbox = new Inbox();
    peer.on('message', (topic, payload) => inbox.push({ topic, payload }));
    try {
      const before = await health();
      await peer.publishAsync('outpost/things/rogue/status', 'not json', { qos: 1 });
      await peer.publishAsync('outpost/things/rogue/status', JSON.stringify({ thing: 'pi-a', connected: false }), {
        qos: 1,
      });
      await peer.subscribeAsync('$aws/things/rogue/jobs/#', { qos: 1 });
      await peer.publishAsync(jobsTopics.startNext('rogue'), '{not json', { qos: 1 });
      const [rejected] = await inbox.wait(jobsTopics.startNextRejected('rogue'), 1, REPLY_MS);
      expect(JSON.parse(String(rejected))).toMatchObject({ code: 'InvalidJson' });
      // rogue's own topic, pi-a's job: IoT Jobs answers ResourceNotFound.
      await peer.publishAsync(jobsTopics.update('rogue', 'api-1'), JSON.stringify({ status: 'FAILED' }), { qos: 1 });
      const [notOwned] = await inbox.wait(jobsTopics.updateRejected('rogue', 'api-1'), 1, REPLY_MS);
      expect(JSON.parse(String(notOwned))).toMatchObject({
        code: 'ResourceNotFound',
        message: 'no execution of job api-1 on rogue',
      });
      const after = await waitFor(async () => {
        const h = await health();
        return (h.stats.malformedStatus ?? 0) >= (before.stats.malformedStatus ?? 0) + 2 ? h : undefined;
      }, REPLY_MS);
      expect(after.stats.malformedRequests).toBe((before.stats.malformedRequests ?? 0) + 1);
      expect(await fleet.store.getThing('rogue')).toBeUndefined();
      expect((await fleet.store.getThing('pi-a'))?.connected).toBe(true);
      expect((await fleet.store.listExecutions('api-1'))[0]?.status).toBe('SUCCEEDED');
    } finally {
      await peer.endAsync(true);
    }
  });
});
