/**
 * The agent's memory and start-up, for bench/agent.ts (docs/agent-footprint.md): idle RSS of the agent process with a
 * model installed, start → first answer over HTTP, and their baselines in the same run — a bare Node process, a bare
 * onnxruntime-node process serving the same model file, and what each module the agent loads (or avoids) adds.
 */
import { execFile } from 'node:child_process';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { startAgent, type AgentProcess } from '../test/helpers/agent.js';

const ROOT = join(import.meta.dirname, '..');
export const IDLE_MS = 5000; // ms after the first answer before RSS is read: the agent is idle, its start-up GC'd
const POLL_MS = 5; // ms between probes of the starting agent (status file, then the endpoint)
const START_TIMEOUT_MS = 30_000; // ms

/**
 * Polls `probe` until it returns a value. Benchmarks run outside vitest, so test/helpers/agent.ts's `waitFor` and
 * `AgentProcess.http()` (both `vi.waitFor`) cannot be used here.
 */
export async function pollFor<T>(probe: () => Promise<T | undefined>, timeoutMs: number, what: string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

/** The agent's local endpoint, once its status file (written by this process) names one. */
export function agentHttp(agent: AgentProcess, timeoutMs = START_TIMEOUT_MS): Promise<string> {
  return pollFor(
    async () => {
      if (agent.child.exitCode !== null) throw new Error(`agent exited ${agent.child.exitCode}:\n${agent.logs()}`);
      const status = await readFile(join(agent.dataDir, 'status.json'), 'utf8').then(
        (text) => JSON.parse(text) as { pid?: number; http?: string },
        () => undefined,
      );
      return status?.pid === agent.child.pid && typeof status?.http === 'string' ? status.http : undefined;
    },
    timeoutMs,
    `the agent's endpoint:\n${agent.logs()}`,
  );
}

export interface Rss {
  readonly rss: number;
  readonly anon: number;
  readonly file: number;
}

/** VmRSS and its anonymous (heaps, stacks) and file-backed (the node binary, libonnxruntime.so) parts, in MB. */
export async function rssOf(pid: number | 'self'): Promise<Rss> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string): number => Number(new RegExp(`${field}:\\s+(\\d+)`).exec(status)?.[1] ?? NaN) / 1024;
  return { rss: kb('VmRSS'), anon: kb('RssAnon'), file: kb('RssFile') };
}

export interface ModelCall {
  /** The installed model's name (its endpoint), its input's name and shape (float32, filled with 0.5). */
  readonly name: string;
  readonly input: string;
  readonly shape: readonly number[];
}

function inferBody(call: ModelCall): string {
  const size = call.shape.reduce((a, b) => a * b, 1);
  return JSON.stringify({
    inputs: [{ name: call.input, shape: call.shape, datatype: 'FP32', data: new Array<number>(size).fill(0.5) }],
  });
}

/** How agentStart runs the agent: by default the built CLI on this Node (bench/agent-arm64.ts: under qemu). */
export interface StartOptions {
  readonly start?: (args: readonly string[], dataDir: string, env: NodeJS.ProcessEnv) => AgentProcess;
  /** ms from spawn to the first answer before giving up. */
  readonly timeoutMs?: number;
}

/**
 * Starts the built agent on `dataDir` (a model already installed) and times start → first 200 from the local
 * endpoint, polling tightly; then, idle for IDLE_MS, its RSS. The agent is stopped before returning.
 */
export async function agentStart(
  args: readonly string[],
  dataDir: string,
  call: ModelCall,
  env: NodeJS.ProcessEnv,
  options: StartOptions = {},
): Promise<{ firstAnswerMs: number; idle: Rss }> {
  await rm(join(dataDir, 'status.json'), { force: true });
  const body = inferBody(call);
  const timeoutMs = options.timeoutMs ?? START_TIMEOUT_MS;
  const started = performance.now();
  const agent: AgentProcess = options.start?.(args, dataDir, env) ?? startAgent(args, dataDir, env, { built: true });
  try {
    const deadline = Date.now() + timeoutMs;
    const http = await agentHttp(agent, timeoutMs);
    for (;;) {
      if (Date.now() > deadline) throw new Error(`no answer from ${http}:\n${agent.logs()}`);
      const response = await fetch(`${http}/v2/models/${call.name}/infer`, { method: 'POST', body }).catch(
        () => undefined,
      );
      if (response?.status === 200) break;
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
    const firstAnswerMs = performance.now() - started;
    await new Promise((resolve) => setTimeout(resolve, IDLE_MS));
    return { firstAnswerMs, idle: await rssOf(agent.child.pid ?? 0) };
  } finally {
    await agent.stop();
  }
}

function node(script: string): Promise<string> {
  return new Promise((resolve, reject) =>
    execFile(process.execPath, ['--input-type=module', '-e', script], { cwd: ROOT }, (error, stdout) =>
      error === null ? resolve(stdout) : reject(new Error(error.message)),
    ),
  );
}

const RSS_PROBE = `const rss=async()=>{const s=(await import('node:fs')).readFileSync('/proc/self/status','utf8');const kb=f=>Number(new RegExp(f+':\\\\s+(\\\\d+)').exec(s)[1])/1024;return {rss:kb('VmRSS'),anon:kb('RssAnon'),file:kb('RssFile')}};const settle=()=>new Promise(r=>setTimeout(r,1500));`;

function sessionScript(file: string, call: ModelCall): string {
  const size = call.shape.reduce((a, b) => a * b, 1);
  return `const ort=(await import('onnxruntime-node')).default;const session=await ort.InferenceSession.create(${JSON.stringify(file)},{logSeverityLevel:4});await session.run({${JSON.stringify(call.input)}:new ort.Tensor('float32',new Float32Array(${size}).fill(0.5),${JSON.stringify(call.shape)})});globalThis.keep=session;`;
}

/** A bare onnxruntime-node process: spawn → session of `file` → one run answered (wall time), and its idle RSS. */
export async function bareOrt(file: string, call: ModelCall): Promise<{ processMs: number; idle: Rss }> {
  const started = performance.now();
  await node(sessionScript(file, call));
  const processMs = performance.now() - started;
  const idle = JSON.parse(
    await node(`${RSS_PROBE}${sessionScript(file, call)}await settle();console.log(JSON.stringify(await rss()));`),
  ) as Rss;
  return { processMs, idle };
}

export interface Step {
  readonly step: string;
  readonly rss: number;
  readonly delta: number;
}

/**
 * What the agent's parts add, cumulatively in one process in the order the agent loads them (so the deltas add
 * up): Node, the CLI parser, the logger, the schemas, ONNX Runtime, the model's session, the metrics, the transport.
 * `transport` picks MQTT.js or the AWS SDK (its CRT native module).
 */
export async function cumulativeBreakdown(
  file: string,
  call: ModelCall,
  transport: 'mqtt' | 'aws-iot-device-sdk-v2',
): Promise<Step[]> {
  const steps: readonly [string, string][] = [
    ['node (empty process)', ''],
    ['+ commander (CLI)', `await import('commander');`],
    ['+ pino (logger)', `await import('pino');`],
    ['+ zod (config and state schemas)', `await import('zod');`],
    ['+ onnxruntime-node (binding, libonnxruntime)', `await import('onnxruntime-node');`],
    ['+ the model: session created, one run', sessionScript(file, call)],
    // The four classes the server loads (runtime/server/metrics/prom.ts), not prom-client's index.
    [
      '+ prom-client (serving metrics)',
      `const {createRequire}=await import('node:module');const r=createRequire(${JSON.stringify(`${ROOT}/`)});for(const m of ['counter','gauge','histogram','registry'])r('prom-client/lib/'+m);`,
    ],
    [`+ ${transport} (transport)`, `await import('${transport}');`],
  ];
  const script = `${RSS_PROBE}const out=[];${steps.map(([name, code]) => `${code}await settle();out.push([${JSON.stringify(name)},(await rss()).rss]);`).join('')}console.log(JSON.stringify(out));`;
  const rows = JSON.parse(await node(script)) as [string, number][];
  return rows.map(([step, rss], i) => ({ step, rss, delta: i === 0 ? rss : rss - (rows[i - 1]?.[1] ?? 0) }));
}

/** Modules the agent does not load unless used: what each would add on its own to a bare Node process. */
export async function avoided(): Promise<Step[]> {
  const base = (JSON.parse(await node(`${RSS_PROBE}await settle();console.log(JSON.stringify(await rss()));`)) as Rss)
    .rss;
  const modules = ['sharp', 'onnxruntime-web', 'aws-iot-device-sdk-v2', 'tar', 'prom-client'];
  const rows: Step[] = [];
  for (const name of modules) {
    const { rss } = JSON.parse(
      await node(`${RSS_PROBE}await import('${name}');await settle();console.log(JSON.stringify(await rss()));`),
    ) as Rss;
    rows.push({ step: name, rss, delta: rss - base });
  }
  return rows;
}
