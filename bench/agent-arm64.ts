/**
 * The device agent's four figures for the arm64 bundle under qemu-user (README.md, "ARM64 bundle"; a sanity check
 * of the bundle, not a Pi's timing):  npm run build && npx tsx bench/agent-arm64.ts [--json] [--bundle <dir>]
 * The bundle is built as a user would (`npm run bundle -- --arch arm64 --with-node`, or an existing one with
 * --bundle) and the agent runs from it: `qemu-aarch64-static <bundle>/node/bin/node <bundle>/dist/cli/main.js agent`.
 * onnxruntime-node's arm64 binding segfaults under qemu-user, so the agent's probe falls back to WASM, which serves.
 * Real Mosquitto on loopback (mTLS, ACL), the fleet in this process. In one run:
 *  1) delivery of a ~10 MB arm64 artifact (archive layout, job → SUCCEEDED), against the x86 agent (built dist/, on
 *     this Node) receiving the same model compiled for x86;
 *  2) bytes fetched for a two-variant (int8 + fp32) arm64 artifact, files layout: rank 1 only;
 *  3) start → first answer over HTTP with the sample CNN installed, against a bare emulated Node process running
 *     onnxruntime-web (WASM) once on the same model file;
 *  4) idle VmRSS of the emulated agent, against a bare emulated Node process (qemu-user's RSS includes the emulator
 *     and its translated code) and the bare onnxruntime-web process of 3).
 */
import { spawn } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { existsSync } from 'node:fs';
import { mkdir, readFile, readdir, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { compile } from '../compiler/compile.js';
import { GraphBuilder, saveModel } from '../compiler/onnx/index.js';
import { deploy } from '../fleet/deploy.js';
import { buildCnn } from '../models/samples.js';
import type { Manifest } from '../runtime/artifact/index.js';
import { missingForEmulation } from '../test/arm64/emulation.js';
import { deploymentState, startAgent, type AgentProcess } from '../test/helpers/agent.js';
import { startBroker } from '../test/helpers/broker.js';
import { agentArgs, fleetTls, signingKeys } from '../test/helpers/signed-artifacts.js';
import { suiteTmpDir } from '../test/helpers/tmp.js';
import { IDLE_MS, agentHttp, agentStart, rssOf, type ModelCall, type Rss } from './agent-footprint.js';

const { values } = parseArgs({
  options: {
    json: { type: 'boolean', default: false },
    bundle: { type: 'string' }, // an existing `npm run bundle -- --arch arm64 --with-node` output
  },
});
const missing = missingForEmulation();
if (missing.length > 0) throw new Error(`arm64 emulation unavailable; missing: ${missing.join('; ')}`);
const ROOT = join(import.meta.dirname, '..');
const QEMU = 'qemu-aarch64-static';
const ENV = { OUTPOST_LOG_LEVEL: 'warn' };
const RUNS = 3; // emulated starts (and bare processes) per figure, medians reported; each ~20–30 s under qemu
const EMULATED_TIMEOUT_MS = 300_000; // ms: Node, the CLI and WASM compilation, translated by qemu on shared cores
const ARM64 = 'arm64:cortex-a72';
const X86 = 'x86_64:avx512-vnni';
const CALL: ModelCall = { name: 'cnn', input: 'image', shape: [1, 3, 64, 64] };

const results: Record<string, number | string> = {};
const { dir, dispose } = await suiteTmpDir('outpost-bench-agent-arm64-');
/** The emulated processes' environment: this one's, without tsx's loader hooks (NODE_OPTIONS) for the arm64 Node. */
const BASE_ENV = Object.fromEntries(Object.entries(process.env).filter(([name]) => name !== 'NODE_OPTIONS'));
const say = (line: string): boolean => process.stderr.write(`bench/agent-arm64: ${line}\n`);

function exitOf(child: ReturnType<typeof spawn>): Promise<number> {
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => resolve(code ?? 1));
  });
}

async function buildBundle(out: string): Promise<string> {
  say('building the arm64 bundle (npm run bundle -- --arch arm64 --with-node)…');
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', join(ROOT, 'scripts', 'bundle.ts'), '--arch', 'arm64', '--out', out, '--with-node'],
    { cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'] },
  );
  const code = await exitOf(child);
  if (code !== 0) throw new Error(`npm run bundle exited ${code}`);
  return out;
}

/** The bundle's agent under qemu-user: the same AgentProcess as test/helpers/agent.ts's (qemu keeps the pid). */
function emulatedAgent(bundle: string, cacheDir: string) {
  return (args: readonly string[], dataDir: string, env: NodeJS.ProcessEnv): AgentProcess => {
    const entry = [join(bundle, 'node', 'bin', 'node'), join(bundle, 'dist', 'cli', 'main.js')];
    const child = spawn(QEMU, [...entry, 'agent', '--data-dir', dataDir, ...args], {
      cwd: bundle,
      env: { ...BASE_ENV, OUTPOST_LOG_LEVEL: 'info', OUTPOST_CACHE_DIR: cacheDir, ...env },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    const signal = async (name: NodeJS.Signals): Promise<void> => {
      if (child.exitCode === null && child.signalCode === null) child.kill(name);
      await exited;
    };
    return {
      child,
      dataDir,
      logs: () => stderr,
      http: () => agentHttp({ child, dataDir, logs: () => stderr } as AgentProcess, EMULATED_TIMEOUT_MS),
      kill: () => signal('SIGKILL'),
      stop: () => signal('SIGTERM'),
    };
  };
}

/**
 * A bare emulated Node process running `script` as an ES module file beside a link to the bundle's node_modules (a
 * file, not `-e`: onnxruntime-web's worker threads inherit `--input-type`, which a worker's file refuses): spawn →
 * the script's "ready" line (wall time), then, idle for IDLE_MS, its VmRSS read from outside as for the agent.
 */
async function bareEmulated(bundle: string, name: string, script: string): Promise<{ readyMs: number; idle: Rss }> {
  const home = join(dir, 'bare');
  if (!existsSync(home)) {
    await mkdir(home);
    await symlink(join(bundle, 'node_modules'), join(home, 'node_modules'));
  }
  const file = join(home, `${name}.mjs`);
  await writeFile(file, `${script}process.stdout.write('ready\\n');setInterval(()=>{},1e6);\n`);
  const started = performance.now();
  const child = spawn(QEMU, [join(bundle, 'node', 'bin', 'node'), file], {
    cwd: home,
    env: BASE_ENV,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  try {
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (chunk: Buffer) => (chunk.toString('utf8').includes('ready') ? resolve() : undefined));
      child.once('exit', (code) => reject(new Error(`bare emulated node exited ${code}:\n${stderr}`)));
    });
    const readyMs = performance.now() - started;
    await new Promise((resolve) => setTimeout(resolve, IDLE_MS));
    return { readyMs, idle: await rssOf(child.pid ?? 0) };
  } finally {
    child.kill('SIGKILL');
  }
}

/** onnxruntime-web as the agent's WASM backend configures it (runtime/backends/wasm.ts): one session, one run. */
function ortWebScript(file: string, threads: number): string {
  const size = CALL.shape.reduce((a, b) => a * b, 1);
  return `const ort=await import('onnxruntime-web');ort.env.wasm.numThreads=${threads};ort.env.wasm.proxy=false;const session=await ort.InferenceSession.create(${JSON.stringify(file)},{executionProviders:['wasm'],logSeverityLevel:4});await session.run({${JSON.stringify(CALL.input)}:new ort.Tensor('float32',new Float32Array(${size}).fill(0.5),${JSON.stringify(CALL.shape)})});globalThis.keep=session;`;
}

/** A MatMul whose weights do not compress away: `rows × cols` float32, compiled for `target`. */
async function matmulArtifact(name: string, rows: number, cols: number, target: string, keys: Keys, auto = false) {
  const g = new GraphBuilder(name);
  const x = g.input('x', 'float32', [1, rows]);
  const w = g.initializer(
    'w',
    Float32Array.from({ length: rows * cols }, (_, i) => Math.sin(i * 12.9898) * 0.05),
    [rows, cols],
  );
  g.output(g.node('MatMul', [x, w]), 'float32', [1, cols]);
  const model = join(dir, `${name}.onnx`);
  await saveModel(g.build({ opsets: { '': 17 } }), model);
  const output = join(dir, `${name}-${target.split(':')[0] ?? ''}`);
  const precision = auto ? 'auto' : 'fp32';
  // As bench/variants.ts: a loose budget keeps int8 (4× smaller) in the running on random weights, so rank 1 is it.
  const accuracy = auto ? { budget: { cosine: 0.9 }, allowAccuracyLoss: true } : {};
  const common = { name, version: '1.0.0', signKey: keys.privateKeyPem, overwrite: true };
  await compile({ model, target, output, precision, ...common, ...accuracy });
  return output;
}
type Keys = Awaited<ReturnType<typeof signingKeys>>;

const broker = await startBroker();
results.broker = broker.kind;
try {
  const bundle = values.bundle ?? (await buildBundle(join(dir, 'bundle')));
  const cacheDir = join(dir, 'probe-cache');
  const emulated = emulatedAgent(bundle, cacheDir);
  const keys = await signingKeys(dir, 'bench');
  const tls = await fleetTls(broker);

  // 1) and 2): one emulated agent receives the ~10 MB artifact, then the two-variant one.
  {
    const ten = await matmulArtifact('ten-mb', 1250, 2000, ARM64, keys);
    const tenX86 = await matmulArtifact('ten-mb', 1250, 2000, X86, keys);
    const two = await matmulArtifact('mlp', 1024, 2048, ARM64, keys, true);
    const timed = async (agent: AgentProcess, thing: string, artifact: string) => {
      const started = performance.now();
      const result = await deploy({
        artifact,
        things: [thing],
        brokerUrl: broker.urls.mtls,
        tls,
        wait: true,
        layout: 'archive',
      });
      const seconds = (performance.now() - started) / 1000;
      const state = await deploymentState(agent.dataDir, result.jobId);
      const bytes = state?.bytesTotal as number;
      return { status: result.things[0]?.status ?? '?', bytes, mbPerS: bytes / 1e6 / seconds, seconds };
    };
    const x86Data = join(dir, 'x86-transfer');
    await mkdir(x86Data);
    const x86 = startAgent(await agentArgs(broker, 'x86-1', keys.publicKeyPath), x86Data, ENV, { built: true });
    await agentHttp(x86);
    const base = await timed(x86, 'x86-1', tenX86);
    await x86.stop();

    const data = join(dir, 'arm64-transfer');
    await mkdir(data);
    say('starting the emulated agent (the first start probes onnxruntime-node, which crashes, then WASM)…');
    const agent = emulated(await agentArgs(broker, 'arm64-1', keys.publicKeyPath), data, ENV);
    await agentHttp(agent, EMULATED_TIMEOUT_MS);
    const arm = await timed(agent, 'arm64-1', ten);
    results.transfer_status = arm.status;
    results.transfer_artifact_bytes = arm.bytes;
    results.transfer_emulated_job_to_succeeded_s = arm.seconds;
    results.transfer_emulated_mb_per_s = arm.mbPerS;
    results.transfer_x86_status = base.status;
    results.transfer_x86_mb_per_s = base.mbPerS;
    results.transfer_emulated_vs_x86 = arm.mbPerS / base.mbPerS;

    const manifest = JSON.parse(await readFile(join(two, 'manifest.json'), 'utf8')) as Manifest;
    const chosen = [...manifest.variants].sort((a, b) => a.rank - b.rank)[0];
    if (chosen === undefined || manifest.variants.length < 2) throw new Error(`expected two variants: ${two}`);
    const result = await deploy({
      artifact: two,
      things: ['arm64-1'],
      brokerUrl: broker.urls.mtls,
      tls,
      wait: true,
      layout: 'files',
    });
    const state = await deploymentState(data, result.jobId);
    results.variants = manifest.variants.map((v) => `${v.id} ${v.bytes}`).join(', ');
    results.files_status = result.things[0]?.status ?? '?';
    results.files_variant = result.things[0]?.statusDetails.variant ?? '?';
    results.files_backend = result.things[0]?.statusDetails.backend ?? '?';
    results.files_bytes_fetched = state?.bytesFetched as number;
    results.files_vs_chosen_variant = (state?.bytesFetched as number) / chosen.bytes;
    results.files_vs_all_variants =
      (state?.bytesFetched as number) / manifest.variants.reduce((s, v) => s + v.bytes, 0);
    await agent.stop();
  }

  // 3) and 4): the sample CNN installed by the emulated agent, then RUNS measured starts against the bare baselines.
  {
    const data = join(dir, 'arm64-serve');
    await mkdir(data);
    const model = join(dir, 'cnn.onnx');
    await saveModel(buildCnn().proto, model);
    const cnn = join(dir, 'cnn-arm64');
    await compile({
      model,
      target: ARM64,
      output: cnn,
      name: 'cnn',
      version: '1.0.0',
      signKey: keys.privateKeyPem,
      precision: 'fp32',
    });
    const args = await agentArgs(broker, 'arm64-2', keys.publicKeyPath);
    const installer = emulated(args, data, ENV);
    await agentHttp(installer, EMULATED_TIMEOUT_MS);
    const installed = await deploy({
      artifact: cnn,
      things: ['arm64-2'],
      brokerUrl: broker.urls.mtls,
      tls,
      wait: true,
    });
    await installer.stop();
    results.cnn_install_status = installed.things[0]?.status ?? '?';
    const variants = join(data, 'store', 'cnn', '1.0.0', 'variants');
    const file = join(variants, (await readdir(variants))[0] ?? '');
    results.model_bytes = (await stat(file)).size;
    results.cnn_backend = installed.things[0]?.statusDetails.backend ?? '?';

    const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
    const agentRuns: { firstAnswerMs: number; idle: Rss }[] = [];
    const bareOrt: { readyMs: number; idle: Rss }[] = [];
    const bareNode: { readyMs: number; idle: Rss }[] = [];
    for (let i = 0; i < RUNS; i++) {
      say(`run ${i + 1}/${RUNS}: emulated agent start → first answer, then a bare onnxruntime-web process…`);
      agentRuns.push(await agentStart(args, data, CALL, ENV, { start: emulated, timeoutMs: EMULATED_TIMEOUT_MS }));
      bareOrt.push(await bareEmulated(bundle, 'ort-web', ortWebScript(file, Math.min(4, availableParallelism()))));
      bareNode.push(await bareEmulated(bundle, 'empty', ''));
    }
    const agentFirst = median(agentRuns.map((r) => r.firstAnswerMs));
    const bareFirst = median(bareOrt.map((r) => r.readyMs));
    results.bare_ort_web_process_to_first_inference_ms = bareFirst;
    results.agent_start_to_first_answer_ms = agentFirst;
    results.agent_start_to_first_answer_ratio = agentFirst / bareFirst;
    results.agent_first_answer_runs_ms = agentRuns.map((r) => r.firstAnswerMs.toFixed(0)).join(' / ');
    results.bare_ort_web_runs_ms = bareOrt.map((r) => r.readyMs.toFixed(0)).join(' / ');
    const agentRss = median(agentRuns.map((r) => r.idle.rss));
    results.agent_idle_rss_mb = agentRss;
    results.agent_idle_rss_anon_mb = median(agentRuns.map((r) => r.idle.anon));
    results.agent_idle_rss_file_mb = median(agentRuns.map((r) => r.idle.file));
    results.agent_idle_rss_runs_mb = agentRuns.map((r) => r.idle.rss.toFixed(1)).join(' / ');
    const ortRss = median(bareOrt.map((r) => r.idle.rss));
    const nodeRss = median(bareNode.map((r) => r.idle.rss));
    results.bare_ort_web_idle_rss_mb = ortRss;
    results.bare_node_idle_rss_mb = nodeRss;
    results.agent_over_bare_node_mb = agentRss - nodeRss;
    results.agent_over_bare_ort_web_mb = agentRss - ortRss;
  }
} finally {
  await broker.stop();
  await dispose();
}

if (values.json) console.log(JSON.stringify(results, null, 2));
else {
  for (const [k, v] of Object.entries(results))
    console.log(`${k.padEnd(44)} ${typeof v === 'number' ? Number(v.toFixed(3)) : v}`);
}
