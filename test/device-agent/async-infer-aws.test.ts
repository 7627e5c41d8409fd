import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent } from '../../device-agent/agent.js';
import { parseAgentConfig } from '../../device-agent/config.js';
import { outpostTopics } from '../../device-agent/protocol/index.js';
import { createTransport } from '../../device-agent/transport/index.js';
import type { IncomingMessage, Transport } from '../../device-agent/transport/types.js';
import type { Model } from '../../runtime/model/model.js';
import { seededRandom } from '../../runtime/tensor/tensor.js';
import { mosquittoPath, startBroker, type TestBroker } from '../helpers/broker.js';
import { until } from '../helpers/mqtt.js';
import { loadFixtures } from '../helpers/serving-artifacts.js';
import { suiteTmpDir } from '../helpers/tmp.js';
import { CONNECT_TIMEOUT_MS, TEST_RECONNECT } from './transport/suite.js';

/**
 * Asynchronous inference with AWS's own SDK as the caller: aws-iot-device-sdk-v2's MQTT 5 client (through Outpost's
 * `aws-iot` transport, which sets and reads the Response Topic and Correlation Data properties with it) on
 * Mosquitto's mTLS listener as `inference-app`, confined by docs/examples/mosquitto-acl.conf's caller entry, asks a
 * real in-process agent serving the sample MLP on ONNX Runtime.
 */
const CALLER = 'inference-app'; // the ACL example's caller identity
const ANSWER_TIMEOUT_MS = 20_000; // ms for the answers to arrive
const SUBSCRIBED_TIMEOUT_MS = 10_000; // ms for the agent to take requests after start
const PROBE_EVERY_MS = 100; // ms between probes while waiting for the agent to subscribe
const REQUESTS = 8;

const installed = mosquittoPath() !== undefined;
let dir: string;
let dispose: () => Promise<void>;
let broker: TestBroker;
let mlp: Model;
let agent: Agent;
let caller: Transport;
const answers: IncomingMessage[] = [];
const THING = 'async-aws-1';
const replyTopic = outpostTopics.inferReplies(THING, CALLER);

function inputRow(i: number): number[] {
  const random = seededRandom(i + 1);
  return Array.from({ length: 16 }, () => random() * 2 - 1);
}

async function ask(model: string, body: Record<string, unknown>, correlation: string): Promise<void> {
  await caller.publish(outpostTopics.infer(THING, model), JSON.stringify(body), {
    qos: 1,
    properties: { responseTopic: replyTopic, correlationData: Buffer.from(correlation) },
  });
}

const correlationOf = (m: IncomingMessage) => m.properties?.correlationData?.toString('utf8');
const json = (m: IncomingMessage | undefined) =>
  JSON.parse(m?.payload.toString('utf8') ?? '{}') as Record<string, unknown>;

beforeAll(async () => {
  if (!installed) return;
  ({ dir, dispose } = await suiteTmpDir());
  broker = await startBroker({ kind: 'mosquitto' });
  ({ mlp } = await loadFixtures(dir, ['mlp']));
  const config = parseAgentConfig({
    thing: THING,
    dataDir: join(dir, THING),
    allowUnsigned: true,
    broker: { url: broker.urls.tcp },
    http: { port: 0 },
    statusIntervalSeconds: 3600,
  });
  agent = new Agent({ config });
  await agent.start();
  await agent.models.swap(mlp);
  const pair = await broker.identity(CALLER);
  caller = createTransport('aws-iot', {
    url: broker.urls.mtls,
    clientId: CALLER,
    tls: { ca: broker.ca.ca, cert: pair.cert, key: pair.key },
    reconnect: TEST_RECONNECT,
    connectTimeoutMs: CONNECT_TIMEOUT_MS,
  });
  caller.onMessage((m) => {
    if (m.topic === replyTopic) answers.push(m);
  });
  await caller.connect();
  await caller.subscribe([replyTopic]);
  // Asks (for a model it does not serve) until the agent answers: it has subscribed.
  const probing = setInterval(() => void ask('none', {}, 'probe').catch(() => undefined), PROBE_EVERY_MS);
  try {
    await until(() => answers.length > 0, SUBSCRIBED_TIMEOUT_MS, `${THING} to take requests`);
  } finally {
    clearInterval(probing);
  }
}, 60_000);

afterAll(async () => {
  if (!installed) return;
  await caller.close();
  await agent.stop();
  await broker.stop();
  await dispose();
}, 60_000);

describe('asynchronous inference with aws-iot-device-sdk-v2 as the caller, through Mosquitto and its ACL', () => {
  it('answers each request on the caller’s response topic with its correlation data, in order', async (context) => {
    context.skip(!installed, 'Mosquitto is not installed');
    expect(caller.protocolVersion).toBe(5);
    const probes = answers.length;
    const probe = json(answers[0]);
    // The probe's answer: a typed error, still correlated.
    expect(correlationOf(answers[0] as IncomingMessage)).toBe('probe');
    expect(probe.code).toBe('MODEL_NOT_FOUND');
    for (let i = 0; i < REQUESTS; i++)
      await ask('mlp', { inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 16], data: inputRow(i) }] }, `r-${i}`);
    await until(
      () => answers.filter((a) => correlationOf(a)?.startsWith('r-') === true).length === REQUESTS,
      ANSWER_TIMEOUT_MS,
      `${REQUESTS} answers`,
    );
    const mine = answers.slice(probes).filter((a) => correlationOf(a)?.startsWith('r-') === true);
    expect(mine.map(correlationOf)).toEqual(Array.from({ length: REQUESTS }, (_, i) => `r-${i}`));
    for (const [i, answer] of mine.entries()) {
      expect(answer.properties?.userProperties?.status).toBe('200');
      const expected = await mlp.infer({ x: { data: Float32Array.from(inputRow(i)), dims: [1, 16] } });
      const outputs = json(answer).outputs as { name: string; data: number[] }[];
      const logits = outputs.find((o) => o.name === 'logits')?.data ?? [];
      expect(logits).toHaveLength(10);
      logits.forEach((v, k) => expect(v).toBeCloseTo(expected.logits?.data[k] as number, 5));
    }
  });
});
