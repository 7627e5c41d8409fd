import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent } from '../../device-agent/agent.js';
import { parseAgentConfig } from '../../device-agent/config.js';
import { loadModel } from '../../runtime/model/load.js';
import type { Model } from '../../runtime/model/model.js';
import { seededRandom } from '../../runtime/tensor/tensor.js';
import { connectAsyncClient, type AsyncClient } from '../helpers/async-client.js';
import { startBroker, type TestBroker } from '../helpers/broker.js';
import { until } from '../helpers/mqtt.js';
import { loopModel } from '../helpers/runaway-models.js';
import { loadFixtures } from '../helpers/serving-artifacts.js';
import { suiteTmpDir } from '../helpers/tmp.js';

/**
 * Asynchronous inference over MQTT, end to end through a real broker (Mosquitto when installed): a real agent
 * (in-process) serving real models on ONNX Runtime, callers that are plain MQTT.js clients on MQTT 5 and 3.1.1.
 */
const ANSWER_TIMEOUT_MS = 20_000; // ms for a test's answers to arrive
const SUBSCRIBED_TIMEOUT_MS = 10_000; // ms for the agent to take requests after start
const PROBE_EVERY_MS = 100; // ms between requests while waiting for the agent to subscribe
/** Loop trips that keep the loop model busy for well over the deadline below (~6 µs a trip on a fast core). */
const LONG_LOOP = 100_000;
const DEADLINE_MS = 100; // ms: the queued request's own timeout_ms
/**
 * Loop trips of each call queued ahead of the deadline's request: several times DEADLINE_MS even on a fast core
 * (a trip can take under 1 µs: two calls of 50,000 and the late request were all answered within 150 ms once).
 */
const DEADLINE_LOOP = 400_000;
const MAX_QUEUE = 3; // async requests per model outstanding, in the overload agent
const ORDERED = 48; // requests in the ordering test

let dir: string;
let dispose: () => Promise<void>;
let broker: TestBroker;
let mlp: Model;
let agent: Agent;
let busy: Agent;
let loopName: string;
const clients: AsyncClient[] = [];
let things = 0;

function inputRow(i: number): number[] {
  const random = seededRandom(i + 1);
  return Array.from({ length: 16 }, () => random() * 2 - 1);
}

function mlpRequest(i: number, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 16], data: inputRow(i) }],
    outputs: [{ name: 'logits' }],
    ...extra,
  };
}

function loopRequest(trips: number, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    inputs: [
      { name: 'M', datatype: 'INT64', shape: [], data: [trips] },
      { name: 'v', datatype: 'FP32', shape: [4], data: [0, 1, 2, 3] },
    ],
    ...extra,
  };
}

async function startAgent(models: readonly Model[], extra: Record<string, unknown> = {}): Promise<Agent> {
  const thing = `async-${++things}`;
  const config = parseAgentConfig({
    thing,
    dataDir: join(dir, thing),
    allowUnsigned: true,
    broker: { url: broker.urls.tcp },
    http: { port: 0 },
    statusIntervalSeconds: 3600,
    ...extra,
  });
  const started = new Agent({ config });
  await started.start();
  for (const model of models) await started.models.swap(model);
  await taking(started);
  return started;
}

/** Asks (for a model it does not serve) until the agent answers: it has subscribed. */
async function taking(a: Agent): Promise<void> {
  const probe = await connectAsyncClient(broker.urls.tcp, a.config.thing, true);
  const asking = setInterval(() => void probe.request('none', {}, 'probe').catch(() => undefined), PROBE_EVERY_MS);
  try {
    await until(() => probe.answers.length > 0, SUBSCRIBED_TIMEOUT_MS, `${a.config.thing} to take requests`);
  } finally {
    clearInterval(asking);
    await probe.close();
  }
}

async function client(a: Agent, mqtt5: boolean): Promise<AsyncClient> {
  const c = await connectAsyncClient(broker.urls.tcp, a.config.thing, mqtt5);
  clients.push(c);
  return c;
}

function logitsOf(json: Record<string, unknown>): number[] {
  const outputs = json.outputs as { name: string; data: number[] }[];
  return outputs.find((o) => o.name === 'logits')?.data ?? [];
}

beforeAll(async () => {
  ({ dir, dispose } = await suiteTmpDir());
  broker = await startBroker();
  ({ mlp } = await loadFixtures(dir, ['mlp']));
  const loop = await loadModel(await loopModel(dir), { warmup: 0 });
  loopName = loop.name;
  agent = await startAgent([mlp], { serving: { concurrency: 1, maxQueue: 256 } });
  busy = await startAgent([loop], { serving: { concurrency: 1, maxQueue: 256 }, async: { maxQueue: MAX_QUEUE } });
}, 60_000);

afterAll(async () => {
  for (const c of clients) await c.close();
  await agent.stop();
  await busy.stop();
  await broker.stop();
  await dispose();
}, 60_000);

describe('asynchronous inference over MQTT', () => {
  it('answers an MQTT 5 caller on its response topic with its correlation data, the same as in-process', async () => {
    const caller = await client(agent, true);
    await caller.request('mlp', mlpRequest(1, { id: 'one' }), 'c-1');
    await until(() => caller.answers.length === 1, ANSWER_TIMEOUT_MS, 'the answer');
    const [answer] = caller.answers;
    expect(answer?.correlation).toBe('c-1');
    expect(answer?.properties?.userProperties?.status).toBe('200');
    expect(answer?.json.id).toBe('one');
    const expected = await mlp.infer({ x: { data: Float32Array.from(inputRow(1)), dims: [1, 16] } });
    const logits = logitsOf(answer?.json ?? {});
    expect(logits).toHaveLength(10);
    logits.forEach((v, i) => expect(v).toBeCloseTo(expected.logits?.data[i] as number, 5));
  });

  it('takes and answers the binary form on MQTT 5 (header length as a user property)', async () => {
    const caller = await client(agent, true);
    const header = Buffer.from(
      JSON.stringify({
        inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 16], parameters: { binary_data_size: 64 } }],
        outputs: [{ name: 'logits', parameters: { binary_data: true } }],
      }),
    );
    const data = Buffer.from(Float32Array.from(inputRow(2)).buffer);
    await caller.request('mlp', Buffer.concat([header, data]), 'bin', header.length);
    await until(() => caller.answers.length === 1, ANSWER_TIMEOUT_MS, 'the binary answer');
    const [answer] = caller.answers;
    const length = Number(answer?.properties?.userProperties?.['inference-header-content-length']);
    const tail = answer?.payload.subarray(length) ?? Buffer.alloc(0);
    expect(tail.byteLength).toBe(40);
    const got = new Float32Array(tail.buffer.slice(tail.byteOffset, tail.byteOffset + 40));
    const expected = await mlp.infer({ x: { data: Float32Array.from(inputRow(2)), dims: [1, 16] } });
    expect([...got]).toEqual([...(expected.logits?.data as Float32Array)]);
  });

  it('answers an MQTT 3.1.1 caller that names response_topic and correlation_data in the request', async () => {
    const caller = await client(agent, false);
    await caller.request('mlp', mlpRequest(3), 'old-client');
    await caller.request('ghost', mlpRequest(3), 'no-such-model');
    await until(() => caller.answers.length === 2, ANSWER_TIMEOUT_MS, 'two answers');
    const ok = caller.answers.find((a) => a.correlation === 'old-client');
    const missing = caller.answers.find((a) => a.correlation === 'no-such-model');
    expect(ok?.json.correlation_data).toBe('old-client');
    expect(logitsOf(ok?.json ?? {})).toHaveLength(10);
    expect(missing?.json).toMatchObject({ code: 'MODEL_NOT_FOUND', correlation_data: 'no-such-model' });
  });

  it('keeps order under load: every answer is its own request, in arrival order (one call at a time)', async () => {
    const caller = await client(agent, true);
    await Promise.all(Array.from({ length: ORDERED }, (_, i) => caller.request('mlp', mlpRequest(100 + i), `o-${i}`)));
    await until(() => caller.answers.length === ORDERED, ANSWER_TIMEOUT_MS, `${ORDERED} answers`);
    expect(caller.answers.map((a) => a.correlation)).toEqual(Array.from({ length: ORDERED }, (_, i) => `o-${i}`));
    for (const [i, answer] of caller.answers.entries()) {
      const expected = await mlp.infer({ x: { data: Float32Array.from(inputRow(100 + i)), dims: [1, 16] } });
      expect(logitsOf(answer.json)[0]).toBeCloseTo(expected.logits?.data[0] as number, 5);
    }
  });

  it('refuses a request over the 128 KB message cap with MESSAGE_TOO_LARGE', async () => {
    const caller = await client(agent, true);
    await caller.request('mlp', mlpRequest(4, { id: 'x'.repeat(130 * 1024) }), 'big');
    await until(() => caller.answers.length === 1, ANSWER_TIMEOUT_MS, 'the refusal');
    expect(caller.answers[0]?.json).toMatchObject({ code: 'MESSAGE_TOO_LARGE' });
    expect(caller.answers[0]?.properties?.userProperties?.status).toBe('413');
  });

  it('answers bad input with a typed error and stays up', async () => {
    const caller = await client(agent, true);
    await caller.request('mlp', Buffer.from('not json'), 'junk');
    await caller.request('mlp', { inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 3], data: [1, 2, 3] }] }, 'shape');
    await caller.request('mlp', mlpRequest(5), 'fine');
    await until(() => caller.answers.length === 3, ANSWER_TIMEOUT_MS, 'three answers');
    const byCorrelation = new Map(caller.answers.map((a) => [a.correlation, a.json]));
    expect(byCorrelation.get('junk')).toMatchObject({ code: 'INPUT_INVALID' });
    expect(String(byCorrelation.get('shape')?.code)).toMatch(/^INPUT_/);
    expect(logitsOf(byCorrelation.get('fine') ?? {})).toHaveLength(10);
  });

  // Native ONNX Runtime runs a call on the event loop's thread: requests sent during a long call are read together
  // after it, in one burst, which is what fills the queue here.
  it('answers OVERLOADED at once beyond the per-model queue, before the queued requests are answered', async () => {
    const caller = await client(busy, true);
    await caller.request(loopName, loopRequest(LONG_LOOP), 'long');
    await Promise.all(['a', 'b', 'c', 'd', 'e', 'f'].map((c) => caller.request(loopName, loopRequest(1), c)));
    await until(() => caller.answers.length === 7, ANSWER_TIMEOUT_MS, 'seven answers');
    const codes = caller.answers.map((a) => `${a.correlation}:${typeof a.json.code === 'string' ? a.json.code : 'ok'}`);
    const overloaded = codes.filter((c) => c.endsWith(':OVERLOADED'));
    expect(overloaded.length, codes.join(' ')).toBeGreaterThanOrEqual(MAX_QUEUE);
    expect(codes.filter((c) => c.endsWith(':ok')).length, codes.join(' ')).toBe(7 - overloaded.length);
    // The refusals left before any request queued beside them was answered.
    const firstQueued = codes.findIndex((c) => c !== 'long:ok' && c.endsWith(':ok'));
    const lastRefusal = codes.map((c) => c.endsWith(':OVERLOADED')).lastIndexOf(true);
    expect(lastRefusal, codes.join(' ')).toBeLessThan(firstQueued === -1 ? Infinity : firstQueued);
  });

  it('answers DEADLINE_EXCEEDED when timeout_ms passes while the request waits, and drops it', async () => {
    const caller = await client(busy, true);
    await caller.request(loopName, loopRequest(DEADLINE_LOOP), 'first');
    await caller.request(loopName, loopRequest(DEADLINE_LOOP), 'second');
    await caller.request(loopName, loopRequest(1, { timeout_ms: DEADLINE_MS }), 'late');
    await until(() => caller.answers.length === 3, ANSWER_TIMEOUT_MS, 'three answers');
    const late = caller.answers.filter((a) => a.correlation === 'late');
    expect(late).toHaveLength(1);
    expect(late[0]?.json).toMatchObject({ code: 'DEADLINE_EXCEEDED' });
    expect(late[0]?.properties?.userProperties?.status).toBe('504');
    expect(caller.answers.filter((a) => a.json.outputs !== undefined)).toHaveLength(2);
  });

  it('is off with async.enabled false: no subscription, no counters in the status', async () => {
    const off = await startAgentOff();
    expect((await off.status()).async).toBeUndefined();
    await off.stop();
  });
});

async function startAgentOff(): Promise<Agent> {
  const thing = `async-off-${++things}`;
  const config = parseAgentConfig({
    thing,
    dataDir: join(dir, thing),
    broker: { url: broker.urls.tcp },
    http: { port: 0 },
    async: { enabled: false },
  });
  const off = new Agent({ config });
  await off.start();
  return off;
}
