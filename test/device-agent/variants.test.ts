import { cp, mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { deploy, type Deployment } from '../../fleet/deploy.js';
import { prettyJson, sha256File, signArtifact, type Manifest } from '../../runtime/artifact/index.js';
import { startBroker, type TestBroker } from '../helpers/broker.js';
import { runCli } from '../helpers/cli.js';
import { deploymentState, startAgent, waitFor, type AgentProcess } from '../helpers/agent.js';
import { suiteTmpDir } from '../helpers/tmp.js';
import {
  agentArgs,
  cnnArtifact,
  fleetTls,
  inferCnnVersion,
  signingKeys,
  type Keys,
} from '../helpers/signed-artifacts.js';

/*
 * The files stream layout end to end (docs/job-document.md, "Stream layouts"): a real agent process over a real
 * Mosquitto (mTLS, ACL), a real two-variant artifact (int8 rank 1, fp32 rank 2) of the sample CNN.
 */
const SETTLE_MS = 60_000; // ms for a deployment to reach a terminal status
const BLOCK = 64 * 1024; // bytes: the fleet's default block size

let dir: string;
let dispose: () => Promise<void>;
let broker: TestBroker;
let keys: Keys;
let artifact: string;
let manifest: Manifest;
const agents: AgentProcess[] = [];
let thingCount = 0;

beforeAll(async () => {
  ({ dir, dispose } = await suiteTmpDir());
  broker = await startBroker();
  keys = await signingKeys(dir, 'trusted');
  artifact = await cnnArtifact(join(dir, 'cnn'), '1.0.0', keys, { precision: 'auto' });
  manifest = JSON.parse(await readFile(join(artifact, 'manifest.json'), 'utf8')) as Manifest;
}, 60_000);

afterEach(async () => {
  for (const a of agents.splice(0)) await a.kill();
});

afterAll(async () => {
  await broker.stop();
  await dispose();
});

async function device(config: Record<string, unknown> = {}) {
  const thing = `var-${++thingCount}`;
  const data = join(dir, thing);
  await mkdir(data, { recursive: true });
  const file = join(data, 'config.json');
  await writeFile(file, JSON.stringify({ thing, ...config }));
  const args = await agentArgs(broker, thing, keys.publicKeyPath, file);
  const start = async () => {
    const agent = startAgent(args, join(data, 'state'));
    agents.push(agent);
    await agent.http();
    return agent;
  };
  return { thing, state: join(data, 'state'), start };
}

/** Blocks served, by "fileId/block", counted by the streams server's hook. */
type Served = Map<string, number>;

async function ship(
  source: string,
  thing: string,
  served: Served = new Map(),
  drop: (b: { fileId: number; block: number }) => boolean = () => false,
): Promise<Deployment> {
  return deploy({
    artifact: source,
    things: [thing],
    brokerUrl: broker.urls.mtls,
    tls: await fleetTls(broker),
    testHooks: {
      onBlock: (b) => {
        if (drop(b)) return 'drop';
        const key = `${b.fileId}/${b.block}`;
        served.set(key, (served.get(key) ?? 0) + 1);
        return 'send';
      },
    },
  });
}

async function settled(deployment: Deployment) {
  const result = await Promise.race([
    deployment.settled(),
    new Promise<never>((_, reject) => setTimeout(() => reject(new Error('deployment did not settle')), SETTLE_MS)),
  ]);
  await deployment.close();
  const [outcome] = result.things;
  if (outcome === undefined) throw new Error('no execution');
  return outcome;
}

/** The stream file ids of the files layout: artifact paths in sorted order from 1 (fleet/delivery-files.ts). */
function fileIdOf(m: Manifest, path: string): number {
  return Object.keys(m.files).sort().indexOf(path) + 1;
}

const variantFile = (m: Manifest, id: string): string => m.variants.find((v) => v.id === id)?.file ?? '';
const fileBytes = (m: Manifest, paths: readonly string[]): number =>
  paths.reduce((sum, p) => sum + (m.files[p]?.bytes ?? 0), 0);

describe('files layout: a device fetches only what it will run', () => {
  it('fetches the manifest and the rank-1 variant only; deploy --wait --json reports the bytes', async () => {
    expect(manifest.variants.map((v) => [v.id, v.rank])).toEqual([
      ['int8', 1],
      ['fp32', 2],
    ]);
    const { thing, state, start } = await device();
    const agent = await start();
    const fleet = await fleetTls(broker);
    const cli = await runCli([
      'deploy',
      artifact,
      '--thing',
      thing,
      '--broker',
      broker.urls.mtls,
      '--ca',
      fleet.ca,
      '--cert',
      fleet.cert,
      '--key',
      fleet.key,
      '--wait',
      '--timeout',
      '60',
      '--json',
    ]);
    expect(cli.code, cli.stderr).toBe(0);
    const out = JSON.parse(cli.stdout) as {
      jobId: string;
      things: { thing: string; status: string; bytesFetched: number; statusDetails: Record<string, string> }[];
    };
    const [only] = out.things;
    expect(only).toMatchObject({ thing, status: 'SUCCEEDED', statusDetails: { variant: 'int8' } });
    const record = await deploymentState(state, out.jobId);
    const document = record?.document as { artifact: { indexSize: number; size: number; layout: string } };
    expect(document.artifact.layout).toBe('files');
    const fp32 = variantFile(manifest, 'fp32');
    const wanted = Object.keys(manifest.files).filter((p) => p !== fp32);
    const expected = document.artifact.indexSize + fileBytes(manifest, wanted);
    expect(only?.bytesFetched).toBe(record?.bytesFetched);
    expect(only?.bytesFetched).toBeGreaterThanOrEqual(expected);
    expect(only?.bytesFetched).toBeLessThanOrEqual(expected + BLOCK); // a re-asked block at most
    expect(only?.bytesFetched).toBeLessThan(document.artifact.size); // less than the whole artifact
    // Installed without the fp32 file, and recorded as such; the agent serves int8.
    const installed = join(state, 'store', 'cnn', '1.0.0');
    expect(await readdir(join(installed, 'variants'))).toEqual(['cnn.int8.onnx']);
    expect(JSON.parse(await readFile(join(state, 'store', 'cnn', '1.0.0.absent.json'), 'utf8'))).toEqual({
      variants: ['fp32'],
    });
    expect(await inferCnnVersion(await agent.http())).toBe('1.0.0');
    const status = await runCli(['agent', 'status', '--data-dir', state, '--json']);
    const deployments = (JSON.parse(status.stdout) as { deployments: { jobId: string; bytesFetched: number }[] })
      .deployments;
    expect(deployments.find((d) => d.jobId === out.jobId)?.bytesFetched).toBe(only?.bytesFetched);
  });

  it.each([
    ['unsigned', 'ARTIFACT_SIGNATURE_MISSING'],
    ['signed by an untrusted key', 'ARTIFACT_SIGNATURE_UNTRUSTED'],
  ])('refuses an artifact %s after the manifest, before any payload byte', async (kind, code) => {
    const copy = join(dir, `refused-${thingCount}`);
    await cp(artifact, copy, { recursive: true });
    if (kind === 'unsigned') await rm(join(copy, 'manifest.sig'));
    else await signArtifact(copy, (await signingKeys(dir, 'stranger')).privateKeyPem);
    const { thing, state, start } = await device();
    await start();
    const served: Served = new Map();
    const deployment = await ship(copy, thing, served);
    const outcome = await settled(deployment);
    expect(outcome.status).toBe('FAILED');
    expect(outcome.statusDetails.reasonCode).toBe(code);
    // Only the delivery index (stream file 0) was asked for; its size is all the device paid.
    expect([...served.keys()].every((key) => key.startsWith('0/'))).toBe(true);
    expect(Number(outcome.statusDetails.bytesFetched)).toBe(deployment.document.artifact.indexSize);
    expect((await deploymentState(state, deployment.jobId))?.bytesFetched).toBe(deployment.document.artifact.indexSize);
  });

  it('fetches the next-ranked variant when the chosen one fails its self-test', async () => {
    // The int8 file replaced by bytes that are no model, the manifest updated and re-signed: hashes and signature
    // hold, so only the self-test can tell.
    const broken = join(dir, 'broken');
    await cp(artifact, broken, { recursive: true });
    const int8 = variantFile(manifest, 'int8');
    await writeFile(join(broken, int8), Buffer.alloc(4096, 7));
    const digest = await sha256File(join(broken, int8));
    const edited = JSON.parse(await readFile(join(broken, 'manifest.json'), 'utf8')) as Manifest;
    edited.files[int8] = { sha256: digest.sha256, bytes: digest.bytes };
    for (const v of edited.variants)
      if (v.id === 'int8') Object.assign(v, { sha256: digest.sha256, bytes: digest.bytes });
    await writeFile(join(broken, 'manifest.json'), prettyJson(edited));
    await signArtifact(broken, keys.privateKeyPem);

    const { thing, state, start } = await device();
    await start();
    const deployment = await ship(broken, thing);
    const outcome = await settled(deployment);
    expect(outcome.status, JSON.stringify(outcome)).toBe('SUCCEEDED');
    expect(outcome.statusDetails.variant).toBe('fp32');
    expect(await readdir(join(state, 'store', 'cnn', '1.0.0', 'variants'))).toEqual(['cnn.fp32.onnx', 'cnn.int8.onnx']);
    const expected = deployment.document.artifact.indexSize + fileBytes(edited, Object.keys(edited.files));
    expect(Number(outcome.statusDetails.bytesFetched)).toBeLessThanOrEqual(expected + BLOCK);
  });

  it('resumes per file after SIGKILL: no file or block that was done is fetched again', async () => {
    const { thing, state, start } = await device({ benchmarkVariants: 2 });
    let agent = await start();
    const fp32 = fileIdOf(manifest, variantFile(manifest, 'fp32'));
    let gate = true; // fp32's second block is held back until the agent has been killed
    let dropped = 0;
    const served: Served = new Map();
    const deployment = await ship(artifact, thing, served, (b) => {
      const hold = gate && b.fileId === fp32 && b.block >= 1;
      if (hold) dropped++;
      return hold;
    });
    await waitFor(() => Promise.resolve(dropped > 0 ? true : undefined), SETTLE_MS);
    const before = await waitFor(async () => {
      const s = await deploymentState(state, deployment.jobId);
      return s !== undefined && (s.bytesReceived as number) > 0 ? s : undefined;
    }, SETTLE_MS);
    expect(before.step).toBe('downloading');
    await agent.kill();
    gate = false;
    agent = await start();
    const outcome = await settled(deployment);
    expect(outcome.status, JSON.stringify(outcome)).toBe('SUCCEEDED');
    // Every block of every file went out once: the restart asked only for what had not arrived.
    const twice = [...served.entries()].filter(([, n]) => n > 1).map(([key]) => key);
    expect(twice).toEqual([]);
    const final = await deploymentState(state, deployment.jobId);
    expect(final?.attempts).toBe(2);
    expect((final?.bytesFetched as number) - (final?.bytesTotal as number)).toBe(0);
  });
});
