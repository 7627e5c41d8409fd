import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deploy } from '../../fleet/deploy.js';
import { startBroker, type TestBroker } from '../helpers/broker.js';
import { runCli } from '../helpers/cli.js';
import { startAgent, waitFor, type AgentProcess } from '../helpers/agent.js';
import { suiteTmpDir } from '../helpers/tmp.js';
import {
  agentArgs,
  cnnArtifact,
  fleetTls,
  signingKeys,
  type Keys,
  inferCnnVersion,
} from '../helpers/signed-artifacts.js';

const DEPLOY_TIMEOUT_MS = 60_000; // ms for one deployment to reach a terminal status

let dir: string;
let dispose: () => Promise<void>;
let broker: TestBroker;
let trusted: Keys;
let agent: AgentProcess;
let http: string;
const THING = 'dev-1';

beforeAll(async () => {
  ({ dir, dispose } = await suiteTmpDir());
  broker = await startBroker();
  trusted = await signingKeys(dir, 'trusted');
  // The validate hook fails version 6.6.6: the deployment that must roll back.
  const config = join(dir, 'agent.json');
  await writeFile(
    config,
    JSON.stringify({
      thing: THING,
      hooks: { validate: { command: 'test "$OUTPOST_VERSION" != "6.6.6"', timeoutSeconds: 10 } },
    }),
  );
  agent = startAgent(await agentArgs(broker, THING, trusted.publicKeyPath, config), join(dir, 'data'));
  http = await agent.http();
}, 60_000);

afterAll(async () => {
  await agent.stop();
  await broker.stop();
  await dispose();
});

async function ship(
  artifact: string,
  options: {
    testHooks?: Parameters<typeof deploy>[0]['testHooks'];
    rollout?: Parameters<typeof deploy>[0]['rollout'];
  } = {},
) {
  return deploy({
    artifact,
    things: [THING],
    brokerUrl: broker.urls.mtls,
    tls: await fleetTls(broker),
    wait: true as const,
    timeoutMs: DEPLOY_TIMEOUT_MS,
    ...options,
  });
}

async function status(): Promise<{
  active: {
    model: string;
    version: string;
    variant: string;
    backend: string;
    role?: string;
    trafficPercent?: number;
  }[];
  deployments: {
    jobId: string;
    state: string;
    bytesTotal: number;
    bytesReceived: number;
    bytesFetched: number;
    reason?: string;
  }[];
  shadows: { version: string; compared: number; agreement?: number }[];
  connected: boolean;
  thing: string;
}> {
  const { stdout, code, stderr } = await runCli(['agent', 'status', '--data-dir', agent.dataDir, '--json']);
  expect(code, stderr).toBe(0);
  return JSON.parse(stdout) as Awaited<ReturnType<typeof status>>;
}

const inferVersion = (): Promise<string> => inferCnnVersion(http, 0.25);

describe('device agent: deployments over a real Mosquitto (mTLS, ACL)', () => {
  it('installs, self-tests, benchmarks the ranked variants and serves the first version', async () => {
    const artifact = await cnnArtifact(join(dir, 'a1'), '1.0.0', trusted, { precision: 'auto' });
    const result = await ship(artifact);
    expect(result.things[0]?.status, JSON.stringify(result)).toBe('SUCCEEDED');
    expect(result.things[0]?.statusDetails).toMatchObject({ model: 'cnn', version: '1.0.0', reasonCode: 'OK' });
    const s = await status();
    expect(s).toMatchObject({ thing: THING, connected: true });
    expect(s.active).toEqual([
      {
        model: 'cnn',
        version: '1.0.0',
        variant: expect.stringMatching(/int8|fp32/) as string,
        backend: 'native',
        role: 'production',
      },
    ]);
    const d = s.deployments.find((x) => x.jobId === result.jobId);
    expect(d).toMatchObject({ state: 'SUCCEEDED' });
    expect(d?.bytesReceived).toBe(d?.bytesTotal);
    expect(await inferVersion()).toBe('1.0.0');
  });

  it('refuses an artifact signed by an unknown key, and the old version keeps serving', async () => {
    const stranger = await signingKeys(dir, 'stranger');
    const artifact = await cnnArtifact(join(dir, 'a2'), '2.0.0', stranger);
    const result = await ship(artifact);
    expect(result.things[0]?.status).toBe('FAILED');
    expect(result.things[0]?.statusDetails.reasonCode).toBe('ARTIFACT_SIGNATURE_UNTRUSTED');
    expect(await inferVersion()).toBe('1.0.0');
  });

  it('rolls back to the previous version when the validate hook fails after the switch', async () => {
    const artifact = await cnnArtifact(join(dir, 'a3'), '6.6.6', trusted);
    const result = await ship(artifact);
    expect(result.things[0]?.status).toBe('FAILED');
    expect(result.things[0]?.statusDetails.reasonCode).toBe('HOOK_FAILED');
    expect(await inferVersion()).toBe('1.0.0');
    expect((await status()).active[0]?.version).toBe('1.0.0');
  });

  it('deploys the same way to an agent on the aws-iot-device-sdk-v2 transport (MQTT 5, mTLS)', async () => {
    const thing = 'dev-sdk';
    const sdk = startAgent(
      [...(await agentArgs(broker, thing, trusted.publicKeyPath)), '--transport', 'aws-iot'],
      join(dir, 'sdk-data'),
    );
    try {
      const endpoint = await sdk.http();
      const artifact = await cnnArtifact(join(dir, 'a5'), '1.0.0', trusted);
      const result = await deploy({
        artifact,
        things: [thing],
        brokerUrl: broker.urls.mtls,
        tls: await fleetTls(broker),
        wait: true as const,
        timeoutMs: DEPLOY_TIMEOUT_MS,
      });
      expect(result.things[0]?.status).toBe('SUCCEEDED');
      expect((await fetch(`${endpoint}/v2/models/cnn/ready`)).status).toBe(200);
    } finally {
      await sdk.stop();
    }
  });

  it('runs a new version as a shadow, compares it on mirrored requests, then promotes it', async () => {
    const artifact = await cnnArtifact(join(dir, 'a6'), '2.0.0', trusted);
    const shadowed = await ship(artifact, { rollout: { mode: 'shadow', percent: 100 } });
    expect(shadowed.things[0]?.status).toBe('SUCCEEDED');
    for (let i = 0; i < 5; i++) expect(await inferVersion()).not.toBe('2.0.0'); // the shadow never answers
    // Mirrored calls finish after the answers, and status.json follows within a second: wait for all five.
    const s = await waitFor(async () => {
      const now = await status();
      return (now.shadows[0]?.compared ?? 0) >= 5 ? now : undefined;
    }, DEPLOY_TIMEOUT_MS);
    expect(s.active.map((a) => `${a.version}:${a.role ?? ''}`)).toContain('2.0.0:shadow');
    const report = s.shadows[0];
    expect(report?.version).toBe('2.0.0');
    expect(report?.agreement).toBe(1); // same weights, same answers
    const promoted = await ship(artifact);
    expect(promoted.things[0]?.status).toBe('SUCCEEDED');
    expect(await inferVersion()).toBe('2.0.0');
    expect((await status()).shadows).toEqual([]);
  });

  it('splits traffic for a canary by weight', async () => {
    const artifact = await cnnArtifact(join(dir, 'a7'), '3.0.0', trusted);
    const result = await ship(artifact, { rollout: { mode: 'canary', percent: 50 } });
    expect(result.things[0]?.status).toBe('SUCCEEDED');
    const traffic = Object.fromEntries((await status()).active.map((a) => [a.version, a.trafficPercent]));
    expect(traffic).toEqual({ '2.0.0': 50, '3.0.0': 50 });
    const seen = new Set<string>();
    for (let i = 0; i < 40 && seen.size < 2; i++) seen.add(await inferVersion());
    expect([...seen].sort()).toEqual(['2.0.0', '3.0.0']);
  });

  it('re-fetches a corrupted block and still installs', async () => {
    const artifact = await cnnArtifact(join(dir, 'a4'), '1.1.0', trusted);
    const result = await ship(artifact, {
      testHooks: { onBlock: (b) => (b.fileId === 1 && b.block === 0 && b.attempt === 1 ? 'corrupt' : 'send') },
    });
    expect(result.things[0]?.status).toBe('SUCCEEDED');
    const d = (await status()).deployments.find((x) => x.jobId === result.jobId);
    expect(d?.bytesFetched).toBeGreaterThan(d?.bytesTotal ?? Infinity);
    expect(await inferVersion()).toBe('1.1.0');
  });
});
