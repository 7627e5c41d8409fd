import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { deploy, type Deployment } from '../../fleet/deploy.js';
import { startBroker, type TestBroker } from '../helpers/broker.js';
import { deploymentState, startAgent, waitFor, type AgentProcess } from '../helpers/agent.js';
import { suiteTmpDir } from '../helpers/tmp.js';
import type { Manifest } from '../../runtime/artifact/index.js';
import { agentArgs, bigArtifact, cnnArtifact, fleetTls, signingKeys, type Keys } from '../helpers/signed-artifacts.js';

const SETTLE_MS = 60_000; // ms for a deployment to reach a terminal status
const BLOCK = 64 * 1024; // bytes: the fleet's default block size

let dir: string;
let dispose: () => Promise<void>;
let broker: TestBroker;
let keys: Keys;
let big: string;
/** The big artifact's model file as a stream file: files layout, artifact paths in sorted order from 1. */
let bigVariant: number;
let cnn: string;
const agents: AgentProcess[] = [];
let thingCount = 0;

beforeAll(async () => {
  ({ dir, dispose } = await suiteTmpDir());
  broker = await startBroker();
  keys = await signingKeys(dir, 'trusted');
  big = await bigArtifact(join(dir, 'big'), '1.0.0', keys);
  const manifest = JSON.parse(await readFile(join(big, 'manifest.json'), 'utf8')) as Manifest;
  bigVariant =
    Object.keys(manifest.files)
      .sort()
      .indexOf(manifest.variants[0]?.file ?? '') + 1;
  cnn = await cnnArtifact(join(dir, 'cnn'), '1.0.0', keys);
}, 60_000);

afterEach(async () => {
  for (const a of agents.splice(0)) await a.kill();
});

afterAll(async () => {
  await broker.stop();
  await dispose();
});

/** A fresh thing with its own data directory (and optional config), and a function to (re)start its agent. */
async function device(config?: Record<string, unknown>) {
  const thing = `fault-${++thingCount}`;
  const data = join(dir, thing);
  await mkdir(data, { recursive: true });
  const file = join(data, 'config.json');
  if (config !== undefined) await writeFile(file, JSON.stringify({ thing, ...config }));
  const args = await agentArgs(broker, thing, keys.publicKeyPath, config === undefined ? undefined : file);
  const start = async () => {
    const agent = startAgent(args, join(data, 'state'));
    agents.push(agent);
    await agent.http();
    return agent;
  };
  return { thing, data, start };
}

async function ship(
  artifact: string,
  thing: string,
  onBlock?: (b: { fileId: number; block: number; attempt: number }) => 'send' | 'corrupt' | 'drop',
): Promise<Deployment> {
  return deploy({
    artifact,
    things: [thing],
    brokerUrl: broker.urls.mtls,
    tls: await fleetTls(broker),
    ...(onBlock === undefined ? {} : { testHooks: { onBlock } }),
  });
}

async function settled(deployment: Deployment, options: { keepServing?: boolean } = {}) {
  const result = await Promise.race([
    deployment.settled(),
    new Promise<never>((_, reject) => setTimeout(() => reject(new Error('deployment did not settle')), SETTLE_MS)),
  ]);
  if (options.keepServing !== true) await deployment.close();
  return result.things[0];
}

describe('agent faults: SIGKILL', () => {
  it('resumes a download killed half-way without fetching verified blocks again', async () => {
    const { thing, data, start } = await device();
    let agent = await start();
    let gate = true; // the first half of the model file flows, the rest waits
    const deployment = await ship(big, thing, (b) =>
      gate && b.fileId === bigVariant && b.block >= 24 ? 'drop' : 'send',
    );
    const state = await waitFor(async () => {
      const s = await deploymentState(join(data, 'state'), deployment.jobId);
      return s !== undefined && (s.bytesReceived as number) >= 24 * BLOCK ? s : undefined;
    }, SETTLE_MS);
    expect(state.step).toBe('downloading');
    await agent.kill();
    gate = false;
    agent = await start();
    const outcome = await settled(deployment);
    expect(outcome?.status).toBe('SUCCEEDED');
    const final = await deploymentState(join(data, 'state'), deployment.jobId);
    const refetched = (final?.bytesFetched as number) - (final?.bytesTotal as number);
    expect(refetched).toBeLessThanOrEqual(BLOCK);
    expect(final?.attempts).toBe(2);
  });

  it.each([
    ['beforeInstall', 'staging'],
    ['validate', 'validating'],
  ])('finishes a deployment killed in its %s hook (step %s)', async (hook, step) => {
    const marker = join(dir, `${hook}-${thingCount}.marker`);
    const pidFile = `${marker}.pid`;
    // First run: record the pid and sleep (the agent is killed meanwhile); later runs pass at once.
    const command = `test -f ${marker} || { touch ${marker}; echo $$ > ${pidFile}; exec sleep 30; }`;
    const { thing, data, start } = await device({ hooks: { [hook]: { command, timeoutSeconds: 60 } } });
    let agent = await start();
    const deployment = await ship(cnn, thing);
    await waitFor(
      async () =>
        (await deploymentState(join(data, 'state'), deployment.jobId))?.step === step &&
        (await readFile(pidFile, 'utf8').catch(() => '')) !== ''
          ? true
          : undefined,
      SETTLE_MS,
    );
    await agent.kill();
    process.kill(Number(await readFile(pidFile, 'utf8')), 'SIGKILL'); // the hook's orphaned sleep
    agent = await start();
    const http = await agent.http();
    const outcome = await settled(deployment);
    expect(outcome?.status).toBe('SUCCEEDED');
    const response = await fetch(`${http}/v2/models/cnn/ready`);
    expect(response.status).toBe(200);
  });

  it('survives SIGKILL at arbitrary moments: every restart serves a whole model or none, and the job ends SUCCEEDED', async () => {
    const { thing, data, start } = await device();
    let agent = await start();
    const deployment = await ship(cnn, thing);
    for (const delay of [150, 300, 450, 600, 750]) {
      await new Promise((resolve) => setTimeout(resolve, delay));
      await agent.kill();
      agent = await start();
      const ready = await fetch(`${await agent.http()}/v2/models/cnn/ready`);
      // Before activation nothing is served (404); after it, the whole new version (200). Never a 5xx.
      expect([200, 404]).toContain(ready.status);
    }
    const outcome = (await settled(deployment, { keepServing: true }))?.status;
    expect(outcome).toBe('SUCCEEDED');
    // The fleet hears SUCCEEDED before the agent records `done`, its last write. A kill in between leaves the agent
    // to report again after its restart (answered as already terminal), so the fleet stays up until it is recorded.
    const state = await waitFor(async () => {
      const s = await deploymentState(join(data, 'state'), deployment.jobId);
      return s?.step === 'done' ? s : undefined;
    }, SETTLE_MS);
    await deployment.close();
    expect(state.outcome).toMatchObject({ status: 'SUCCEEDED' });
  });
});

describe('agent faults: the broker', () => {
  it('starts and serves offline when the broker is down, then takes a deployment once it is back', async () => {
    const { thing, data, start } = await device();
    let agent = await start();
    expect((await settled(await ship(cnn, thing)))?.status).toBe('SUCCEEDED');
    await agent.kill();
    await broker.kill();
    agent = await start();
    const ready = await fetch(`${await agent.http()}/v2/models/cnn/ready`);
    expect(ready.status).toBe(200);
    const status = JSON.parse(await readFile(join(data, 'state', 'status.json'), 'utf8')) as { connected: boolean };
    expect(status.connected).toBe(false);
    await broker.restart();
    const deployment = await ship(big, thing);
    expect((await settled(deployment))?.status).toBe('SUCCEEDED');
  });

  it('finishes a download across a broker restart', async () => {
    const { thing, data, start } = await device();
    await start();
    let gate = true;
    const deployment = await ship(big, thing, (b) =>
      gate && b.fileId === bigVariant && b.block >= 20 ? 'drop' : 'send',
    );
    await waitFor(
      async () =>
        (((await deploymentState(join(data, 'state'), deployment.jobId))?.bytesReceived as number | undefined) ?? 0) >=
        20 * BLOCK
          ? true
          : undefined,
      SETTLE_MS,
    );
    await broker.restart();
    gate = false;
    expect((await settled(deployment))?.status).toBe('SUCCEEDED');
  });
});

describe('agent faults: resources', () => {
  it('fails with DISK_FULL when the artifact would not fit, and keeps serving', async () => {
    const { thing, start } = await device({ diskMarginBytes: Number.MAX_SAFE_INTEGER });
    await start();
    const outcome = await settled(await ship(cnn, thing));
    expect(outcome?.status).toBe('FAILED');
    expect(outcome?.statusDetails.reasonCode).toBe('DISK_FULL');
  });
});
