import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { deploy } from '../../fleet/deploy.js';
import { startAgent, type AgentProcess } from '../helpers/agent.js';
import { ACL_FILE, mosquittoPath, startBroker, type TestBroker } from '../helpers/broker.js';
import { suiteTmpDir } from '../helpers/tmp.js';
import { agentArgs, cnnArtifact, fleetTls, signingKeys, type Keys } from '../helpers/signed-artifacts.js';

/**
 * A broker ACL that refuses a device its stream topics (docs/mosquitto-acl.md), through a real agent and Mosquitto:
 * the job must fail with a clear code after a bounded number of backed-off attempts, never loop (device-agent/README.md,
 * "Retries"). Mosquitto's acl_file grants every SUBSCRIBE and filters deliveries, and answers a refused MQTT 5 PUBLISH
 * with PUBACK 0x87, so the two refusals look different to the device:
 *   - asking is refused (the GetStream topic): the first request's PUBACK says so, and the job fails at once;
 *   - reading is refused (the data topic): the blocks never come, each attempt stalls, and the job fails after the
 *     configured attempts, with backoff between them.
 */
const SETTLE_MS = 60_000; // ms for a deployment to reach a terminal status
const RETRY = Object.freeze({ minMs: 200, maxMs: 800, jitter: 0.25, maxAttempts: 3 }); // ms, as the agent config says
const DENY_ASKING = 'acl-no-get';
const DENY_READING = 'acl-no-data';

const installed = mosquittoPath() !== undefined;
let dir: string;
let dispose: () => Promise<void>;
let broker: TestBroker;
let keys: Keys;
let artifact: string;
const agents: AgentProcess[] = [];

beforeAll(async () => {
  ({ dir, dispose } = await suiteTmpDir());
  if (!installed) return;
  // The documented ACL, with one thing refused its GetStream topics and another its data topics.
  const acl = join(dir, 'acl.conf');
  const docs = await readFile(ACL_FILE, 'utf8');
  await writeFile(
    acl,
    [
      `user ${DENY_ASKING}`,
      `topic deny $aws/things/${DENY_ASKING}/streams/+/get/#`,
      `user ${DENY_READING}`,
      `topic deny $aws/things/${DENY_READING}/streams/+/data/#`,
      '',
      docs,
    ].join('\n'),
  );
  broker = await startBroker({ kind: 'mosquitto', acl });
  keys = await signingKeys(dir, 'trusted');
  artifact = await cnnArtifact(join(dir, 'cnn'), '1.0.0', keys);
}, 60_000);

afterEach(async () => {
  for (const a of agents.splice(0)) await a.stop();
});

afterAll(async () => {
  if (installed) await broker.stop();
  await dispose();
});

async function device(thing: string): Promise<AgentProcess> {
  const config = join(dir, `${thing}.json`);
  await writeFile(
    config,
    JSON.stringify({
      thing,
      // Short request timeouts so a stalled attempt ends in about a second; the retry policy under test.
      download: { requestTimeoutMs: 200, maxStalls: 2 },
      retry: { download: RETRY },
    }),
  );
  const agent = startAgent(await agentArgs(broker, thing, keys.publicKeyPath, config), join(dir, thing));
  agents.push(agent);
  await agent.http();
  return agent;
}

async function ship(thing: string) {
  const result = await deploy({
    artifact,
    things: [thing],
    brokerUrl: broker.urls.mtls,
    tls: await fleetTls(broker),
    wait: true as const,
    timeoutMs: SETTLE_MS,
  });
  return result.things[0];
}

/** The agent's "trying again" log lines (pino JSON on stderr). */
function retries(agent: AgentProcess): { attempt: number; delayMs: number; code: string }[] {
  return agent
    .logs()
    .split('\n')
    .filter((line) => line.includes('download failed; trying again after a backoff'))
    .map((line) => JSON.parse(line) as { attempt: number; delayMs: number; code: string });
}

describe('a stream the broker ACL refuses (Mosquitto)', () => {
  it('asking refused: FAILED TRANSPORT_PUBLISH_REJECTED on the first attempt, naming the topic', async (context) => {
    context.skip(!installed, 'Mosquitto is not installed');
    const agent = await device(DENY_ASKING);
    const outcome = await ship(DENY_ASKING);
    expect(outcome?.status).toBe('FAILED');
    expect(outcome?.statusDetails.reasonCode).toBe('TRANSPORT_PUBLISH_REJECTED');
    expect(outcome?.statusDetails.reason).toMatch(/GetStream on \$aws\/things\/acl-no-get\/streams\/.+\/get\/cbor/);
    expect(outcome?.statusDetails.reason).toMatch(/0x87/);
    expect(retries(agent)).toEqual([]); // a refusal is not retried
  });

  it('reading refused: FAILED DOWNLOAD_FAILED after exactly maxAttempts attempts, backed off', async (context) => {
    context.skip(!installed, 'Mosquitto is not installed');
    const agent = await device(DENY_READING);
    const outcome = await ship(DENY_READING);
    expect(outcome?.status).toBe('FAILED');
    expect(outcome?.statusDetails.reasonCode).toBe('DOWNLOAD_FAILED');
    expect(outcome?.statusDetails.reason).toContain(`gave up after ${RETRY.maxAttempts} attempts`);
    expect(outcome?.statusDetails.reason).toMatch(/broker ACL/);
    const seen = retries(agent);
    expect(seen.map((r) => [r.attempt, r.code])).toEqual([
      [1, 'DOWNLOAD_FAILED'],
      [2, 'DOWNLOAD_FAILED'],
    ]);
    // Each wait is the policy's jittered exponential delay: minMs·2ⁿ ± jitter, capped at maxMs.
    seen.forEach((r, n) => {
      const base = Math.min(RETRY.maxMs, RETRY.minMs * 2 ** n);
      expect(r.delayMs).toBeGreaterThanOrEqual(Math.floor(base * (1 - RETRY.jitter)));
      expect(r.delayMs).toBeLessThanOrEqual(Math.ceil(base * (1 + RETRY.jitter)));
    });
  });
});
