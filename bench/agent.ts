/**
 * The device agent's numbers in README.md ("Device agent"):  npx tsx bench/agent.ts [--json]
 * Real Mosquitto on loopback (the test harness: mTLS, ACL), the agent as a child process (as on a device), the fleet
 * in this process. 1) a ~10 MB artifact, job created → SUCCEEDED; 2) the same with SIGKILL at ~50 % and a restart:
 * bytes fetched twice; 3) with the sample CNN installed: agent process start → first inference answered over HTTP
 * (MQTT.js, aws-iot, broker unreachable), against a bare onnxruntime-node process doing the same (start → session →
 * first inference); 4) idle RSS of each, and what each module adds (bench/agent-footprint.ts,
 * docs/agent-footprint.md).
 * The agent runs from dist/ as on a device: `npm run build` first.
 */
import { existsSync } from 'node:fs';
import { mkdir, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { deploy } from '../fleet/deploy.js';
import { freePort, startBroker } from '../test/helpers/broker.js';
import { deploymentState, startAgent } from '../test/helpers/agent.js';
import { suiteTmpDir } from '../test/helpers/tmp.js';
import { agentArgs, cnnArtifact, fleetTls, signingKeys } from '../test/helpers/signed-artifacts.js';
import { agentHttp, agentStart, avoided, bareOrt, cumulativeBreakdown, pollFor, type Step } from './agent-footprint.js';
import { GraphBuilder, saveModel } from '../compiler/onnx/index.js';
import { compile } from '../compiler/compile.js';

const { values } = parseArgs({
  options: {
    json: { type: 'boolean', default: false },
    // Sections 3 and 4 only (start-up and memory), skipping the transfers.
    footprint: { type: 'boolean', default: false },
  },
});
if (!existsSync(join(import.meta.dirname, '..', 'dist', 'cli', 'main.js')))
  throw new Error('run `npm run build` first: the agent runs from dist/');
const BUILT = { built: true };
const ENV = { OUTPOST_LOG_LEVEL: 'warn' };
const { dir, dispose } = await suiteTmpDir('outpost-bench-agent-');
const broker = await startBroker();
const results: Record<string, number | string> = { broker: broker.kind };
const tables: Record<string, Step[]> = {};
const RUNS = 3; // agent starts per configuration; medians are reported
type Run = Awaited<ReturnType<typeof agentStart>>;

async function tenMegabyteArtifact(keys: Awaited<ReturnType<typeof signingKeys>>): Promise<string> {
  // 2.5 M float32 weights ≈ 10 MB, values that do not compress away.
  const g = new GraphBuilder('ten-mb');
  const x = g.input('x', 'float32', [1, 1250]);
  const w = g.initializer(
    'w',
    Float32Array.from({ length: 1250 * 2000 }, (_, i) => Math.sin(i * 12.9898) * 0.01),
    [1250, 2000],
  );
  g.output(g.node('MatMul', [x, w]), 'float32', [1, 2000]);
  const model = join(dir, 'ten-mb.onnx');
  await saveModel(g.build({ opsets: { '': 17 } }), model);
  const out = join(dir, 'ten-mb-artifact');
  await compile({
    model,
    target: 'x86_64:avx512-vnni',
    output: out,
    name: 'ten-mb',
    version: '1.0.0',
    signKey: keys.privateKeyPem,
    precision: 'fp32',
  });
  return out;
}

try {
  const keys = await signingKeys(dir, 'bench');
  const artifact = await tenMegabyteArtifact(keys);
  const tls = await fleetTls(broker);

  // 1) Transfer.
  if (!values.footprint) {
    const data = join(dir, 'device-1');
    await mkdir(data);
    const agent = startAgent(await agentArgs(broker, 'bench-1', keys.publicKeyPath), data, ENV, BUILT);
    await agentHttp(agent);
    const started = performance.now();
    // The archive layout: one stream file, the block path this measures (bench/variants.ts: the files layout).
    const result = await deploy({
      artifact,
      things: ['bench-1'],
      brokerUrl: broker.urls.mtls,
      tls,
      wait: true,
      layout: 'archive',
    });
    const seconds = (performance.now() - started) / 1000;
    const state = await deploymentState(data, result.jobId);
    const bytes = state?.bytesTotal as number;
    results.transfer_status = result.things[0]?.status ?? '?';
    results.artifact_bytes = bytes;
    results.job_to_succeeded_s = seconds;
    results.transfer_mb_per_s = bytes / 1e6 / seconds;
    await agent.stop();
  }

  // 2) SIGKILL at ~50 %, restart.
  if (!values.footprint) {
    const data = join(dir, 'device-2');
    await mkdir(data);
    let agent = startAgent(await agentArgs(broker, 'bench-2', keys.publicKeyPath), data, ENV, BUILT);
    await agentHttp(agent);
    // The second half of the archive is held back until the kill, so the kill lands at ~50 % whatever the speed.
    let gate = true;
    const blocks = Math.ceil((await stat(join(artifact, 'variants', 'ten-mb.fp32.onnx'))).size / (64 * 1024));
    const deployment = await deploy({
      artifact,
      things: ['bench-2'],
      brokerUrl: broker.urls.mtls,
      tls,
      layout: 'archive', // file 1 is the archive
      testHooks: { onBlock: (b) => (gate && b.fileId === 1 && b.block >= blocks / 2 ? 'drop' : 'send') },
    });
    const half = await pollFor(
      async () => {
        const s = await deploymentState(data, deployment.jobId);
        return s !== undefined && (s.bytesReceived as number) >= (s.bytesTotal as number) / 2 - 64 * 1024
          ? s
          : undefined;
      },
      60_000,
      'half of the download',
    );
    await agent.kill();
    gate = false;
    agent = startAgent(await agentArgs(broker, 'bench-2', keys.publicKeyPath), data, ENV, BUILT);
    const outcome = await deployment.settled();
    await deployment.close();
    const final = await deploymentState(data, deployment.jobId);
    const index = deployment.document.artifact.indexSize; // fetched once: the restart reuses the verified copy
    results.kill_at_fraction = (half.bytesReceived as number) / (half.bytesTotal as number);
    results.kill_status = outcome.things[0]?.status ?? '?';
    results.refetched_bytes = (final?.bytesFetched as number) - (final?.bytesTotal as number) - index;
    results.block_bytes = deployment.document.artifact.blockSize;
    await agent.stop();
  }

  // 3) Start → first answer and 4) idle RSS, with the sample CNN installed (served natively), against baselines.
  {
    const data = join(dir, 'device-3');
    await mkdir(data);
    const cnn = await cnnArtifact(join(dir, 'cnn'), '1.0.0', keys);
    const args = await agentArgs(broker, 'bench-3', keys.publicKeyPath);
    const agent = startAgent(args, data, ENV, BUILT);
    await agentHttp(agent);
    await deploy({ artifact: cnn, things: ['bench-3'], brokerUrl: broker.urls.mtls, tls, wait: true });
    await agent.stop();
    const call = { name: 'cnn', input: 'image', shape: [1, 3, 64, 64] } as const;
    const variants = join(data, 'store', 'cnn', '1.0.0', 'variants');
    const file = join(variants, (await readdir(variants))[0] ?? '');
    const down = `mqtts://127.0.0.1:${String(await freePort())}`; // nothing listens there
    const unreachable = args.map((a) => (a === broker.urls.mtls ? down : a));
    const runs = { mqtt: [] as Run[], awsIot: [] as Run[], offline: [] as Run[], bare: [] as Run[] };
    for (let i = 0; i < RUNS; i++) {
      runs.mqtt.push(await agentStart(args, data, call, ENV));
      runs.awsIot.push(await agentStart([...args, '--transport', 'aws-iot'], data, call, ENV));
      runs.offline.push(await agentStart(unreachable, data, call, ENV));
      const bare = await bareOrt(file, call);
      runs.bare.push({ firstAnswerMs: bare.processMs, idle: bare.idle });
    }
    const median = (xs: number[]): number => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
    const first = (r: Run[]): number => median(r.map((x) => x.firstAnswerMs));
    const rss = (r: Run[]): number => median(r.map((x) => x.idle.rss));
    results.model_bytes = (await stat(file)).size;
    results.raw_ort_process_to_first_inference_ms = first(runs.bare);
    results.agent_start_to_first_answer_ms = first(runs.mqtt);
    results.agent_start_to_first_answer_ratio = first(runs.mqtt) / first(runs.bare);
    results.agent_broker_unreachable_first_answer_ms = first(runs.offline);
    results.agent_aws_iot_start_to_first_answer_ms = first(runs.awsIot);
    results.raw_ort_idle_rss_mb = rss(runs.bare);
    results.agent_idle_rss_mqtt_mb = rss(runs.mqtt);
    results.agent_idle_rss_mqtt_anon_mb = median(runs.mqtt.map((x) => x.idle.anon));
    results.agent_idle_rss_mqtt_file_mb = median(runs.mqtt.map((x) => x.idle.file));
    results.agent_idle_rss_aws_iot_mb = rss(runs.awsIot);
    results.agent_idle_rss_broker_unreachable_mb = rss(runs.offline);
    results.agent_idle_rss_mqtt_range_mb = runs.mqtt.map((x) => x.idle.rss.toFixed(1)).join(' / ');
    tables.breakdown_mqtt = await cumulativeBreakdown(file, call, 'mqtt');
    tables.breakdown_aws_iot = await cumulativeBreakdown(file, call, 'aws-iot-device-sdk-v2');
    tables.not_loaded_unless_used = await avoided();
  }
} finally {
  await broker.stop();
  await dispose();
}

if (values.json) console.log(JSON.stringify({ ...results, ...tables }, null, 2));
else {
  for (const [k, v] of Object.entries(results))
    console.log(`${k.padEnd(44)} ${typeof v === 'number' ? Number(v.toFixed(3)) : v}`);
  for (const [name, rows] of Object.entries(tables)) {
    console.log(`\n${name} (MB)`);
    for (const row of rows)
      console.log(`  ${row.step.padEnd(46)} ${row.rss.toFixed(1).padStart(6)}  +${row.delta.toFixed(1)}`);
  }
}
