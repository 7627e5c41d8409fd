import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deploy } from '../../fleet/deploy.js';
import { manifestDigest } from '../../runtime/artifact/index.js';
import { startAgent, type AgentProcess } from '../helpers/agent.js';
import { startBroker, type TestBroker } from '../helpers/broker.js';
import { suiteTmpDir } from '../helpers/tmp.js';
import {
  agentArgs,
  cnnArtifact,
  fleetTls,
  inferCnnVersion,
  signingKeys,
  type Keys,
} from '../helpers/signed-artifacts.js';

/**
 * An installed name@version is immutable and every artifact that arrives is verified first (device-agent/README.md,
 * "A deployment"): a second, different cnn@1.0.0 is refused whoever signed it, an identical one is a no-op success.
 */
const DEPLOY_TIMEOUT_MS = 60_000; // ms for one deployment to reach a terminal status
const THING = 'versions-dev';

let dir: string;
let dispose: () => Promise<void>;
let broker: TestBroker;
let agent: AgentProcess;
let http: string;
let trusted: Keys;
let stranger: Keys;
let first: string;

beforeAll(async () => {
  ({ dir, dispose } = await suiteTmpDir());
  broker = await startBroker();
  [trusted, stranger] = await Promise.all([signingKeys(dir, 'trusted'), signingKeys(dir, 'stranger')]);
  agent = startAgent(await agentArgs(broker, THING, trusted.publicKeyPath), join(dir, 'data'));
  http = await agent.http();
  first = await cnnArtifact(join(dir, 'first'), '1.0.0', trusted);
  const result = await ship(first);
  expect(result.things[0]?.status, JSON.stringify(result)).toBe('SUCCEEDED');
}, 120_000);

afterAll(async () => {
  await agent.stop();
  await broker.stop();
  await dispose();
});

async function ship(artifact: string) {
  return deploy({
    artifact,
    things: [THING],
    brokerUrl: broker.urls.mtls,
    tls: await fleetTls(broker),
    wait: true as const,
    timeoutMs: DEPLOY_TIMEOUT_MS,
  });
}

const installedManifest = () => readFile(join(agent.dataDir, 'store', 'cnn', '1.0.0', 'manifest.json'));

/** What serves is still the first build, byte for byte, and nothing was left half-staged. */
async function expectFirstStillServing(manifestBefore: Buffer): Promise<void> {
  expect(await inferCnnVersion(http)).toBe('1.0.0');
  expect((await installedManifest()).equals(manifestBefore)).toBe(true);
  expect((await readdir(join(agent.dataDir, 'store', 'cnn'))).filter((n) => n.startsWith('.staging'))).toEqual([]);
}

describe('a deployment of a version already installed', () => {
  it('signed by an untrusted key, with different content: FAILED ARTIFACT_SIGNATURE_UNTRUSTED, 1.0.0 serves on', async () => {
    const before = await installedManifest();
    const forged = await cnnArtifact(join(dir, 'forged'), '1.0.0', stranger, { precision: 'auto' });
    const result = await ship(forged);
    expect(result.things[0]?.status).toBe('FAILED');
    expect(result.things[0]?.statusDetails.reasonCode).toBe('ARTIFACT_SIGNATURE_UNTRUSTED');
    await expectFirstStillServing(before);
  });

  it('signed by the trusted key, with different content: FAILED VERSION_CONFLICT naming both manifests', async () => {
    const before = await installedManifest();
    const rebuilt = await cnnArtifact(join(dir, 'rebuilt'), '1.0.0', trusted, { precision: 'auto' });
    const result = await ship(rebuilt);
    const details = result.things[0]?.statusDetails ?? {};
    expect(result.things[0]?.status).toBe('FAILED');
    expect(details.reasonCode).toBe('VERSION_CONFLICT');
    const installed = manifestDigest(before);
    const arrived = manifestDigest(await readFile(join(rebuilt, 'manifest.json')));
    expect(installed).not.toBe(arrived);
    expect(details.reason).toContain(installed);
    expect(details.reason).toContain(arrived);
    expect(details.reason).toMatch(/new version/);
    await expectFirstStillServing(before);
  });

  it('identical to what is installed: SUCCEEDED, "already installed", nothing rewritten', async () => {
    const before = await installedManifest();
    const result = await ship(first);
    expect(result.things[0]?.status, JSON.stringify(result)).toBe('SUCCEEDED');
    expect(result.things[0]?.statusDetails).toMatchObject({ reasonCode: 'OK', version: '1.0.0' });
    expect(result.things[0]?.statusDetails.reason).toMatch(/^cnn@1\.0\.0 already installed; serving \(/);
    await expectFirstStillServing(before);
  });
});
