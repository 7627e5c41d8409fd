import { createHash } from 'node:crypto';
import { cp, mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DeployEvent, deploy } from '../../fleet/deploy.js';
import { packArtifact } from '../../runtime/artifact/index.js';
import { isOutpostError } from '../../runtime/errors.js';
import { sampleCnnArtifact } from '../helpers/artifacts.js';
import { freePort, startBroker, type TestBroker } from '../helpers/broker.js';
import { runCli } from '../helpers/cli.js';
import { suiteTmpDir } from '../helpers/tmp.js';
import { runScriptedDevice } from './scripted-device.js';

const DEPLOY_TIMEOUT_MS = 20_000; // milliseconds: a deployment to scripted devices takes well under a second
const SMALL_BLOCK = 4_096; // bytes: many blocks from a small artifact, so bitmaps and retries are exercised

let broker: TestBroker;
let tmp: { dir: string; dispose: () => Promise<void> };
let artifactDir: string;

beforeAll(async () => {
  broker = await startBroker();
  tmp = await suiteTmpDir();
  artifactDir = (await sampleCnnArtifact(tmp.dir)).dir;
});

afterAll(async () => {
  await broker.stop();
  await tmp.dispose();
});

describe('deploy()', () => {
  it('packs, serves and reaches SUCCEEDED on a scripted device; the device got the packed archive', async () => {
    const events: DeployEvent[] = [];
    const device = runScriptedDevice({ url: broker.urls.tcp, thing: 'pi-1' });
    const result = await deploy({
      artifact: artifactDir,
      things: ['pi-1'],
      brokerUrl: broker.urls.tcp,
      jobId: 'deploy-ok',
      blockSize: SMALL_BLOCK,
      layout: 'archive', // the one-file form (AWS IoT Core's): the scripted device fetches the archive
      wait: true,
      timeoutMs: DEPLOY_TIMEOUT_MS,
      onEvent: (event) => events.push(event),
    });
    expect(result).toEqual({
      jobId: 'deploy-ok',
      things: [{ thing: 'pi-1', status: 'SUCCEEDED', statusDetails: { step: 'done' } }],
    });
    const run = await device;
    const packed = await packArtifact(artifactDir, join(tmp.dir, 'reference.tar.gz'));
    expect(createHash('sha256').update(run.archive).digest('hex')).toBe(packed.sha256);
    expect(run.document).toMatchObject({
      operation: 'outpost.deploy',
      model: { name: 'sample-cnn', version: '1.0.0' },
      artifact: { streamId: 'deploy-ok', fileId: 1, indexFileId: 0, size: packed.bytes, blockSize: SMALL_BLOCK },
      target: { arch: 'any' },
    });
    const downloads = events.flatMap((e) => (e.type === 'download' ? [e] : []));
    expect(downloads.length).toBeGreaterThan(1);
    expect(downloads.at(-1)).toMatchObject({ thing: 'pi-1', bytes: packed.bytes, total: packed.bytes });
    const statuses = events.flatMap((e) => (e.type === 'ready' ? ['ready'] : e.type === 'execution' ? [e.status] : []));
    expect(statuses).toEqual(['ready', 'QUEUED', 'IN_PROGRESS', 'IN_PROGRESS', 'SUCCEEDED']);
  });

  it('reports FAILED with the statusDetails a failing device sends (CBOR downloads)', async () => {
    const device = runScriptedDevice({ url: broker.urls.tcp, thing: 'pi-2', encoding: 'cbor', outcome: 'fail' });
    const result = await deploy({
      artifact: artifactDir,
      things: ['pi-2'],
      brokerUrl: broker.urls.tcp,
      layout: 'archive', // the one-file form (AWS IoT Core's): the scripted device fetches the archive
      wait: true,
      timeoutMs: DEPLOY_TIMEOUT_MS,
    });
    await device;
    expect(result.jobId).toMatch(/^deploy-sample-cnn-1-0-0-[0-9a-f]{6}$/);
    expect(result.things).toEqual([
      {
        thing: 'pi-2',
        status: 'FAILED',
        statusDetails: { step: 'self-testing', code: 'SELF_TEST_FAILED', reason: 'outputs differ' },
      },
    ]);
  });

  it('a corrupted block is caught by the index and fetched again; a .tar.gz ships as is', async () => {
    const packed = await packArtifact(artifactDir, join(tmp.dir, 'ship.tar.gz'));
    const device = runScriptedDevice({ url: broker.urls.tcp, thing: 'pi-3' });
    const result = await deploy({
      artifact: packed.path,
      things: ['pi-3'],
      brokerUrl: broker.urls.tcp,
      layout: 'archive', // the one-file form (AWS IoT Core's): the scripted device fetches the archive
      blockSize: SMALL_BLOCK,
      wait: true,
      timeoutMs: DEPLOY_TIMEOUT_MS,
      // TEST HOOK: archive blocks 2 and 5 arrive corrupted the first time.
      testHooks: {
        onBlock: (b) => (b.fileId === 1 && (b.block === 2 || b.block === 5) && b.attempt === 1 ? 'corrupt' : 'send'),
      },
    });
    const run = await device;
    expect(result.things[0]?.status).toBe('SUCCEEDED');
    expect(run.badBlocks).toBe(2);
    expect(createHash('sha256').update(run.archive).digest('hex')).toBe(packed.sha256);
  });

  it('without wait, serves until close(); with wait, a device that never starts is CANCELED at the timeout', async () => {
    const deployment = await deploy({ artifact: artifactDir, things: ['absent-1'], brokerUrl: broker.urls.tcp });
    expect(deployment.result().things).toEqual([{ thing: 'absent-1', status: 'QUEUED', statusDetails: {} }]);
    expect((await deployment.close()).things[0]?.status).toBe('QUEUED');
    const result = await deploy({
      artifact: artifactDir,
      things: ['absent-2'],
      brokerUrl: broker.urls.tcp,
      wait: true,
      timeoutMs: 300,
    });
    expect(result.things).toEqual([
      {
        thing: 'absent-2',
        status: 'CANCELED',
        statusDetails: { reason: 'deployment timed out after 0 s before the device started the job' },
      },
    ]);
  });

  it('refuses a tampered artifact before touching the broker, and cleans up after a broker it cannot reach', async () => {
    const workDir = join(tmp.dir, 'work');
    await mkdir(workDir);
    const tampered = join(tmp.dir, 'tampered');
    await cp(artifactDir, tampered, { recursive: true });
    await writeFile(join(tampered, 'labels.txt'), 'not the labels\n');
    const unused = `mqtt://127.0.0.1:${await freePort()}`;
    const refused = await deploy({ artifact: tampered, things: ['pi-9'], brokerUrl: unused, workDir }).catch(
      (e: unknown) => e,
    );
    expect(isOutpostError(refused, 'ARTIFACT_HASH_MISMATCH')).toBe(true);
    const unreachable = await deploy({ artifact: artifactDir, things: ['pi-9'], brokerUrl: unused, workDir }).catch(
      (e: unknown) => e,
    );
    expect(isOutpostError(unreachable, 'BROKER_UNREACHABLE')).toBe(true);
    expect(await readdir(workDir)).toEqual([]);
  });
});

describe('outpost deploy', () => {
  it('--wait --json prints each thing and the single status, and exits non-zero when a thing FAILED', async () => {
    const device = runScriptedDevice({ url: broker.urls.tcp, thing: 'pi-cli', outcome: 'fail' });
    const cli = await runCli([
      'deploy',
      artifactDir,
      '--thing',
      'pi-cli',
      '--broker',
      broker.urls.tcp,
      '--job-id',
      'cli-job',
      '--layout',
      'archive',
      '--wait',
      '--timeout',
      '20',
      '--json',
    ]);
    await device;
    expect(cli.code).toBe(1);
    expect(JSON.parse(cli.stdout)).toEqual({
      jobId: 'cli-job',
      status: 'FAILED',
      things: [
        {
          thing: 'pi-cli',
          status: 'FAILED',
          statusDetails: { step: 'self-testing', code: 'SELF_TEST_FAILED', reason: 'outputs differ' },
        },
      ],
    });
    expect(cli.stderr).toContain('[DEPLOYMENT_FAILED]');
    // Progress goes to stderr with --json too: the download (bytes served to the thing) and each status change.
    expect(cli.stderr).toMatch(/Z deploy: download pi-cli [\d.]+ (B|KiB)\/[\d.]+ (B|KiB)/);
    expect(cli.stderr).toMatch(/Z deploy: pi-cli: IN_PROGRESS → FAILED/);
  });
});
