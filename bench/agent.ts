/**
 * The device agent's numbers in README.md ("Device agent"):  npx tsx bench/agent.ts [--json]
 * Real Mosquitto on loopback (the test harness: mTLS, ACL), the agent as a child process (as on a device), the fleet
 * in this process. 1) a ~10 MB artifact, job created → SUCCEEDED; 2) the same with SIGKILL at ~50 % and a restart:
 * bytes fetched twice; 3) cold start, agent process start → first inference answered, against a raw onnxruntime
 * process doing the same (start → session → first inference) and the session creation alone; 4) idle RSS.
 * The agent runs from dist/ as on a device: `npm run build` first.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { deploy } from '../fleet/deploy.js';
import { startBroker } from '../test/helpers/broker.js';
import { deploymentState, startAgent, waitFor } from '../test/helpers/agent.js';
import { suiteTmpDir } from '../test/helpers/tmp.js';
import { agentArgs, bigArtifact, fleetTls, signingKeys } from '../test/helpers/signed-artifacts.js';
import { GraphBuilder, saveModel } from '../compiler/onnx/index.js';
import { compile } from '../compiler/compile.js';

const { values } = parseArgs({ options: { json: { type: 'boolean', default: false } } });
if (!existsSync(join(import.meta.dirname, '..', 'dist', 'cli', 'main.js')))
  throw new Error('run `npm run build` first: the agent runs from dist/');
const BUILT = { built: true };
const ENV = { OUTPOST_LOG_LEVEL: 'warn' };
const { dir, dispose } = await suiteTmpDir('outpost-bench-agent-');
const broker = await startBroker();
const results: Record<string, number | string> = { broker: broker.kind };

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

function rssMb(pid: number): Promise<number> {
  return readFile(`/proc/${pid}/status`, 'utf8').then((s) => Number(/VmRSS:\s+(\d+)/.exec(s)?.[1] ?? NaN) / 1024);
}

try {
  const keys = await signingKeys(dir, 'bench');
  const artifact = await tenMegabyteArtifact(keys);
  const tls = await fleetTls(broker);

  // 1) Transfer.
  {
    const data = join(dir, 'device-1');
    await mkdir(data);
    const agent = startAgent(await agentArgs(broker, 'bench-1', keys.publicKeyPath), data, ENV, BUILT);
    await agent.http();
    const started = performance.now();
    const result = await deploy({ artifact, things: ['bench-1'], brokerUrl: broker.urls.mtls, tls, wait: true });
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
  {
    const data = join(dir, 'device-2');
    await mkdir(data);
    let agent = startAgent(await agentArgs(broker, 'bench-2', keys.publicKeyPath), data, ENV, BUILT);
    await agent.http();
    // The second half of the archive is held back until the kill, so the kill lands at ~50 % whatever the speed.
    let gate = true;
    const blocks = Math.ceil((await stat(join(artifact, 'variants', 'ten-mb.fp32.onnx'))).size / (64 * 1024));
    const deployment = await deploy({
      artifact,
      things: ['bench-2'],
      brokerUrl: broker.urls.mtls,
      tls,
      testHooks: { onBlock: (b) => (gate && b.fileId === 1 && b.block >= blocks / 2 ? 'drop' : 'send') },
    });
    const half = await waitFor(async () => {
      const s = await deploymentState(data, deployment.jobId);
      return s !== undefined && (s.bytesReceived as number) >= (s.bytesTotal as number) / 2 - 64 * 1024 ? s : undefined;
    }, 60_000);
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

  // 3) Cold start and 4) idle RSS, with a small model installed (the sample-sized "big" MLP, 4 MB).
  {
    const data = join(dir, 'device-3');
    await mkdir(data);
    const small = await bigArtifact(join(dir, 'small'), '1.0.0', keys);
    let agent = startAgent(await agentArgs(broker, 'bench-3', keys.publicKeyPath), data, ENV, BUILT);
    await agent.http();
    await deploy({ artifact: small, things: ['bench-3'], brokerUrl: broker.urls.mtls, tls, wait: true });
    await agent.stop();
    const body = JSON.stringify({
      inputs: [{ name: 'x', shape: [1, 512], datatype: 'FP32', data: new Array(512).fill(0.1) }],
    });
    const colds: number[] = [];
    for (let i = 0; i < 3; i++) {
      const started = performance.now();
      agent = startAgent(await agentArgs(broker, 'bench-3', keys.publicKeyPath), data, ENV, BUILT);
      const http = await agent.http();
      await waitFor(
        async () =>
          (await fetch(`${http}/v2/models/big/infer`, { method: 'POST', body })).status === 200 ? true : undefined,
        30_000,
      );
      colds.push(performance.now() - started);
      if (i < 2) await agent.stop();
    }
    results.agent_cold_start_ms = Math.min(...colds);
    await new Promise((resolve) => setTimeout(resolve, 3000));
    results.agent_idle_rss_mb = await rssMb(agent.child.pid ?? 0);
    await agent.stop();
    const variant = (await import('node:fs/promises')).readdir(join(data, 'store', 'big', '1.0.0', 'variants'));
    const file = join(data, 'store', 'big', '1.0.0', 'variants', (await variant)[0] ?? '');
    const script = `const t0=performance.now();const ort=require('onnxruntime-node');const t1=performance.now();ort.InferenceSession.create(${JSON.stringify(file)},{logSeverityLevel:4}).then(async s=>{const t2=performance.now();await s.run({x:new ort.Tensor('float32',new Float32Array(512).fill(0.1),[1,512])});console.log(JSON.stringify({session:t2-t1,total:performance.now()-t0}))})`;
    const raws: { session: number; process: number }[] = [];
    for (let i = 0; i < 3; i++) {
      const started = performance.now();
      const out = await new Promise<string>((resolve, reject) =>
        execFile(process.execPath, ['-e', script], { cwd: join(import.meta.dirname, '..') }, (e, stdout) =>
          e === null ? resolve(stdout) : reject(new Error(e.message)),
        ),
      );
      raws.push({ session: (JSON.parse(out) as { session: number }).session, process: performance.now() - started });
    }
    results.raw_ort_session_create_ms = Math.min(...raws.map((r) => r.session));
    results.raw_ort_process_to_first_inference_ms = Math.min(...raws.map((r) => r.process));
    results.small_model_bytes = (await stat(file)).size;
  }
} finally {
  await broker.stop();
  await dispose();
}

if (values.json) console.log(JSON.stringify(results, null, 2));
else
  for (const [k, v] of Object.entries(results))
    console.log(`${k.padEnd(38)} ${typeof v === 'number' ? Number(v.toFixed(3)) : v}`);
