/**
 * Asynchronous inference over MQTT, README.md "Asynchronous inference":  npx tsx bench/async.ts [--json] [--quick]
 * One agent (in this process, the sample MLP on native ONNX Runtime, serving defaults) behind loopback Mosquitto
 * (the test harness's broker, plain TCP), asked the same request two ways in the same run, rounds interleaved:
 * an HTTP call to its local endpoint (keep-alive) and an MQTT 5 request/response round trip through the broker
 * (publish → agent → answer on the response topic). Then throughput with 32 requests outstanding, each way.
 * The caller shares this process with the agent, as an app on the device would share its CPU.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { connectAsync, type MqttClient } from 'mqtt';
import { Agent } from '../device-agent/agent.js';
import { parseAgentConfig } from '../device-agent/config.js';
import { outpostTopics } from '../device-agent/protocol/index.js';
import { latencyStats } from '../runtime/tuning/stats.js';
import { startBroker } from '../test/helpers/broker.js';
import { loadFixtures } from '../test/helpers/serving-artifacts.js';
import { suiteTmpDir } from '../test/helpers/tmp.js';
import { brief, closedLoop, floats, interleaved, jsonCall, ok, round3, target } from './server/client.js';

const { values } = parseArgs({
  options: { json: { type: 'boolean', default: false }, quick: { type: 'boolean', default: false } },
});
const PLAN = values.quick ? { rounds: 4, perRound: 50, warmup: 50 } : { rounds: 10, perRound: 200, warmup: 200 };
const OUTSTANDING = 32; // requests in flight in the throughput runs
const LOAD_SECONDS = values.quick ? 2 : 5; // s per throughput run
const ANSWER_TIMEOUT_MS = 10_000; // ms: a request unanswered this long fails the bench

/** An MQTT 5 caller: one connection, requests correlated by Correlation Data, answers on its response topic. */
class Caller {
  private readonly waiting = new Map<string, (payload: Buffer) => void>();
  private next = 0;

  private constructor(
    private readonly client: MqttClient,
    private readonly topic: string,
    private readonly replyTopic: string,
  ) {
    client.on('message', (_t, payload, packet) => {
      const id = packet.properties?.correlationData?.toString('utf8');
      const resolve = id === undefined ? undefined : this.waiting.get(id);
      if (resolve === undefined) return;
      this.waiting.delete(id as string);
      resolve(payload);
    });
  }

  static async connect(url: string, thing: string, model: string): Promise<Caller> {
    const clientId = `bench-${randomBytes(4).toString('hex')}`;
    const client = await connectAsync(url, { protocolVersion: 5, clientId, reconnectPeriod: 0 });
    (client.stream as { setNoDelay?: (on: boolean) => unknown }).setNoDelay?.(true); // as the agent's transport does
    const replyTopic = outpostTopics.inferReplies(thing, clientId);
    await client.subscribeAsync(replyTopic, { qos: 1 });
    return new Caller(client, outpostTopics.infer(thing, model), replyTopic);
  }

  async ask(body: Buffer): Promise<Buffer> {
    const id = String(this.next++);
    const answered = new Promise<Buffer>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`request ${id} unanswered`)), ANSWER_TIMEOUT_MS);
      this.waiting.set(id, (payload) => {
        clearTimeout(timer);
        resolve(payload);
      });
    });
    const properties = { responseTopic: this.replyTopic, correlationData: Buffer.from(id) };
    await this.client.publishAsync(this.topic, body, { qos: 1, properties });
    const payload = await answered;
    if (payload.includes('"error"')) throw new Error(`MQTT answer: ${payload.toString('utf8').slice(0, 200)}`);
    return payload;
  }

  close(): Promise<void> {
    return this.client.endAsync(true);
  }
}

async function mqttLoad(caller: Caller, body: Buffer, outstanding: number, seconds: number) {
  const samples: number[] = [];
  const started = performance.now();
  const deadline = started + seconds * 1000;
  const loop = async () => {
    while (performance.now() < deadline) {
      const t0 = performance.now();
      await caller.ask(body);
      samples.push(performance.now() - t0);
    }
  };
  await Promise.all(Array.from({ length: outstanding }, loop));
  return { samples, wallMs: performance.now() - started };
}

const { dir, dispose } = await suiteTmpDir('outpost-bench-async-');
const perSecond = (n: number, ms: number) => Math.round((n / ms) * 1000);

/** One broker configuration: a fresh Mosquitto, the agent on it, HTTP and MQTT interleaved, then the loads. */
async function measure(tcpNoDelay: boolean) {
  const broker = await startBroker({ tcpNoDelay });
  const thing = `bench-async-${tcpNoDelay ? 'nodelay' : 'default'}`;
  const config = parseAgentConfig({
    thing,
    dataDir: join(dir, thing),
    broker: { url: broker.urls.tcp },
    http: { port: 0 },
    statusIntervalSeconds: 3600,
  });
  const agent = new Agent({ config });
  let caller: Caller | undefined;
  try {
    const { http } = await agent.start();
    const { mlp } = await loadFixtures(join(dir, thing), ['mlp']); // the agent releases it when it stops
    await agent.models.swap(mlp);
    const call = jsonCall('mlp', 'x', [1, 16], floats(16, 1));
    const to = target(http, OUTSTANDING);
    caller = await Caller.connect(broker.urls.tcp, thing, 'mlp');
    const asker = caller;
    // The agent subscribes once connected: ask until it answers.
    for (let tries = 0; ; tries++) {
      try {
        await asker.ask(call.body);
        break;
      } catch (error) {
        if (tries > 50) throw error;
      }
    }
    const httpAnswer = JSON.parse((await ok(to, call)).body.toString('utf8')) as { outputs: unknown };
    const mqttAnswer = JSON.parse((await asker.ask(call.body)).toString('utf8')) as { outputs: unknown };
    if (JSON.stringify(httpAnswer.outputs) !== JSON.stringify(mqttAnswer.outputs))
      throw new Error('the MQTT answer differs from the HTTP one');
    const stats = await interleaved(
      [
        { name: 'http', run: () => ok(to, call) },
        { name: 'mqtt', run: () => asker.ask(call.body) },
      ],
      PLAN,
    );
    const httpStats = stats.get('http');
    const mqttStats = stats.get('mqtt');
    if (httpStats === undefined || mqttStats === undefined) throw new Error('no latency figures');
    const httpLoad = await closedLoop(to, call, OUTSTANDING, LOAD_SECONDS);
    const mqttRun = await mqttLoad(asker, call.body, OUTSTANDING, LOAD_SECONDS);
    return {
      broker: `${broker.kind}${tcpNoDelay ? ' (set_tcp_nodelay true)' : ' (defaults)'}`,
      latency: { http: brief(httpStats), mqtt: brief(mqttStats) },
      mqtt_over_http_p50: round3(mqttStats.p50 / httpStats.p50),
      mqtt_over_http_p99: round3(mqttStats.p99 / httpStats.p99),
      throughput_32: {
        http_per_s: perSecond(httpLoad.samples.length, httpLoad.wallMs),
        http_errors: httpLoad.errors,
        mqtt_per_s: perSecond(mqttRun.samples.length, mqttRun.wallMs),
        mqtt_p50_ms: round3(latencyStats(Float64Array.from(mqttRun.samples)).p50),
      },
      async: (await agent.status()).async,
    };
  } finally {
    await caller?.close();
    await agent.stop();
    await broker.stop();
  }
}

try {
  const runs = [await measure(false), await measure(true)];
  const result = { model: 'mlp (16→64→64→10), JSON request', plan: PLAN, runs };
  if (values.json) console.log(JSON.stringify(result, null, 2));
  else {
    console.log(`| broker | path (${result.model}) | p50 ms | p99 ms | /s at ${OUTSTANDING} outstanding |`);
    console.log('| --- | --- | --- | --- | --- |');
    for (const r of runs) {
      const { http, mqtt } = r.latency;
      const t = r.throughput_32;
      console.log(`| ${r.broker} | HTTP, local endpoint | ${http.p50_ms} | ${http.p99_ms} | ${t.http_per_s} |`);
      console.log(`| ${r.broker} | MQTT 5 round trip via broker | ${mqtt.p50_ms} | ${mqtt.p99_ms} | ${t.mqtt_per_s} |`);
      const ratio = round3(t.mqtt_per_s / t.http_per_s);
      console.log(`| ${r.broker} | MQTT ÷ HTTP | ×${r.mqtt_over_http_p50} | ×${r.mqtt_over_http_p99} | ×${ratio} |`);
    }
  }
} finally {
  await dispose();
}
