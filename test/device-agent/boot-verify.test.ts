import { execFileSync } from 'node:child_process';
import { chmod, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deploy } from '../../fleet/deploy.js';
import { startAgent, waitFor, type AgentProcess } from '../helpers/agent.js';
import { startBroker, type TestBroker } from '../helpers/broker.js';
import { suiteTmpDir } from '../helpers/tmp.js';
import { agentArgs, cnnArtifact, fleetTls, inferCnnVersion, signingKeys } from '../helpers/signed-artifacts.js';

/**
 * At boot the agent serves its installed models before it connects, and re-hashes only installed files whose
 * identity (inode, size, mtime, ctime) changed since it verified them (docs/agent-footprint.md): a tampered file
 * is still refused, and a corrupt record means full verification.
 */
const DEPLOY_TIMEOUT_MS = 60_000; // ms
const LOG_TIMEOUT_MS = 20_000; // ms
const THING = 'boot-dev';

let dir: string;
let dispose: () => Promise<void>;
let broker: TestBroker;
let args: string[];
let data: string;
let variant: string;
let agent: AgentProcess | undefined;

beforeAll(async () => {
  ({ dir, dispose } = await suiteTmpDir());
  broker = await startBroker();
  const keys = await signingKeys(dir, 'trusted');
  args = await agentArgs(broker, THING, keys.publicKeyPath);
  data = join(dir, 'data');
  agent = startAgent(args, data);
  await agent.http();
  const result = await deploy({
    artifact: await cnnArtifact(join(dir, 'cnn'), '1.0.0', keys),
    things: [THING],
    brokerUrl: broker.urls.mtls,
    tls: await fleetTls(broker),
    wait: true,
    timeoutMs: DEPLOY_TIMEOUT_MS,
  });
  expect(result.things[0]?.status, JSON.stringify(result)).toBe('SUCCEEDED');
  await agent.stop();
  const variants = join(data, 'store', 'cnn', '1.0.0', 'variants');
  variant = join(variants, (await readdir(variants))[0] ?? '');
}, 120_000);

afterAll(async () => {
  await agent?.stop();
  await broker.stop();
  await dispose();
});

/** Rewrites the installed variant with `bytes` (same size) and puts its mtime back to the nanosecond. */
async function rewriteKeepingMtime(bytes: Buffer): Promise<void> {
  const reference = join(dir, 'times');
  execFileSync('touch', ['-r', variant, reference]);
  await chmod(variant, 0o644);
  await writeFile(variant, bytes);
  execFileSync('touch', ['-r', reference, variant]);
}

describe('boot verification', () => {
  it('records at install what it verified, and serves at boot with the broker down', async () => {
    const record = JSON.parse(await readFile(join(data, 'verified.json'), 'utf8')) as { entries: object };
    expect(Object.keys(record.entries).length).toBeGreaterThan(0);
    await broker.kill();
    agent = startAgent(args, data);
    expect(await inferCnnVersion(await agent.http())).toBe('1.0.0');
    await agent.stop();
    await broker.restart();
  });

  it('refuses a tampered installed file (same size, mtime restored), then serves again once it is repaired', async () => {
    const original = await readFile(variant);
    const tampered = Buffer.from(original);
    tampered[tampered.length - 1] = (tampered[tampered.length - 1] ?? 0) ^ 0xff;
    await rewriteKeepingMtime(tampered);
    agent = startAgent(args, data);
    const http = await agent.http();
    const running = agent;
    await waitFor(
      () => (/installed model failed to load/.test(running.logs()) ? true : undefined),
      LOG_TIMEOUT_MS,
      () => `a refused load in the logs:\n${running.logs()}`,
    );
    expect(running.logs()).toMatch(/cnn\.fp32\.onnx in .* has sha256 [0-9a-f]{64}, expected [0-9a-f]{64}/);
    const response = await fetch(`${http}/v2/models/cnn/ready`);
    expect(response.status).not.toBe(200);
    await agent.stop();

    // Repaired, and the record corrupt: everything is hashed again, and it serves.
    await rewriteKeepingMtime(original);
    await writeFile(join(data, 'verified.json'), '{"version":1,"entr');
    agent = startAgent(args, data);
    expect(await inferCnnVersion(await agent.http())).toBe('1.0.0');
    await agent.stop();
  });
});
