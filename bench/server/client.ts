/**
 * bench/server/server.ts's HTTP client and measurement: node:http over keep-alive agents (TCP or unix socket), prepared
 * Open Inference Protocol requests (JSON and binary), interleaved latency rounds and closed-loop load.
 */
import { Agent, request } from 'node:http';
import { latencyStats, type LatencyStats } from '../../runtime/tuning/stats.js';
import { seededRandom } from '../../runtime/tensor/tensor.js';

export interface Target {
  readonly agent: Agent;
  readonly where: { readonly host: string; readonly port: number } | { readonly socketPath: string };
}

export function target(url: string, sockets: number): Target {
  const agent = new Agent({ keepAlive: true, maxSockets: sockets });
  if (url.startsWith('unix:')) return { agent, where: { socketPath: url.slice('unix:'.length) } };
  const { hostname, port } = new URL(url);
  return { agent, where: { host: hostname, port: Number(port) } };
}

export interface Reply {
  readonly status: number;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly body: Buffer;
}

export function send(to: Target, path: string, body?: Buffer, headers: Readonly<Record<string, string | number>> = {}) {
  return new Promise<Reply>((resolve, reject) => {
    const req = request(
      { ...to.where, agent: to.agent, path, method: body === undefined ? 'GET' : 'POST', headers },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => {
          const all = chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks);
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: all });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** A prepared POST /infer: the body encoded once, so a timed call is transport + server. */
export interface Call {
  readonly path: string;
  readonly body: Buffer;
  readonly headers: Readonly<Record<string, string | number>>;
}

export function jsonCall(model: string, input: string, dims: readonly number[], data: Float32Array): Call {
  const body = Buffer.from(
    JSON.stringify({ inputs: [{ name: input, shape: dims, datatype: 'FP32', data: Array.from(data) }] }),
  );
  const headers = { 'content-type': 'application/json', 'content-length': body.length };
  return { path: `/v2/models/${model}/infer`, body, headers };
}

export function binaryCall(model: string, input: string, dims: readonly number[], data: Float32Array): Call {
  const bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const header = Buffer.from(
    JSON.stringify({
      inputs: [{ name: input, shape: dims, datatype: 'FP32', parameters: { binary_data_size: bytes.length } }],
      parameters: { binary_data_output: true },
    }),
  );
  const body = Buffer.concat([header, bytes]);
  const headers = {
    'content-type': 'application/octet-stream',
    'inference-header-content-length': header.length,
    'content-length': body.length,
  };
  return { path: `/v2/models/${model}/infer`, body, headers };
}

export async function ok(to: Target, call: Call): Promise<Reply> {
  const reply = await send(to, call.path, call.body, call.headers);
  if (reply.status !== 200) throw new Error(`${call.path}: HTTP ${reply.status} ${reply.body.toString('utf8')}`);
  return reply;
}

/** The first output's float data of an infer reply, JSON or binary (one output). */
export function firstOutput(reply: Reply): Float32Array {
  const length = reply.headers['inference-header-content-length'];
  if (typeof length === 'string') {
    const bytes = reply.body.subarray(Number(length));
    return new Float32Array(Uint8Array.from(bytes).buffer);
  }
  const parsed = JSON.parse(reply.body.toString('utf8')) as { outputs: { data: number[] }[] };
  return Float32Array.from(parsed.outputs[0]?.data ?? []);
}

export function sameAs(expected: Float32Array, got: Float32Array, what: string): void {
  if (expected.length !== got.length || expected.some((v, i) => v !== got[i]))
    throw new Error(`${what}: the HTTP answer differs from the in-process one`);
}

/** Calls per subject: `warmup` untimed, then `perRound` timed in each of `rounds`. */
export interface RoundPlan {
  readonly rounds: number;
  readonly perRound: number;
  readonly warmup: number;
}

export interface Subject {
  readonly name: string;
  readonly run: () => Promise<unknown>;
}

/** Each subject `perRound` calls per round, subjects interleaved, so drift and neighbours' load hit all alike. */
export async function interleaved(subjects: readonly Subject[], plan: RoundPlan): Promise<Map<string, LatencyStats>> {
  const samples = new Map(subjects.map((s) => [s.name, new Float64Array(plan.rounds * plan.perRound)]));
  for (const s of subjects) for (let i = 0; i < plan.warmup; i++) await s.run();
  for (let round = 0; round < plan.rounds; round++) {
    for (const s of subjects) {
      const out = samples.get(s.name) as Float64Array;
      for (let i = 0; i < plan.perRound; i++) {
        const started = performance.now();
        await s.run();
        out[round * plan.perRound + i] = performance.now() - started;
      }
    }
  }
  return new Map([...samples].map(([name, s]) => [name, latencyStats(s)]));
}

export function floats(count: number, seed: number): Float32Array {
  const random = seededRandom(seed);
  return Float32Array.from({ length: count }, () => random());
}

export const round3 = (x: number) => Math.round(x * 1000) / 1000;
export const brief = (s: LatencyStats) => ({ p50_ms: round3(s.p50), p99_ms: round3(s.p99), mean_ms: round3(s.mean) });
export const stat = (m: Map<string, LatencyStats>, name: string) => m.get(name) as LatencyStats;

/** Sum of every sample of one metric (all label sets) in a Prometheus text exposition. */
export function metricSum(text: string, name: string): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith(`${name}{`) || line.startsWith(`${name} `))
      sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

/** The server's own counters, read from GET /metrics. */
export interface Scrape {
  readonly requests: number;
  readonly errors: number;
  /** Batches the batcher ran, and the rows in them (outpost_batch_size's count and sum). */
  readonly batches: number;
  readonly rows: number;
}

export async function scrape(to: Target): Promise<Scrape> {
  const text = (await send(to, '/metrics')).body.toString('utf8');
  return {
    requests: metricSum(text, 'outpost_inference_requests_total'),
    errors: metricSum(text, 'outpost_inference_errors_total'),
    batches: metricSum(text, 'outpost_batch_size_count'),
    rows: metricSum(text, 'outpost_batch_size_sum'),
  };
}

/** `clients` loops, each sending its next request when the last is answered, for `seconds`. */
export async function closedLoop(to: Target, call: Call, clients: number, seconds: number) {
  const samples: number[] = [];
  let errors = 0;
  let firstError: string | undefined;
  const started = performance.now();
  const deadline = started + seconds * 1000;
  const loop = async () => {
    while (performance.now() < deadline) {
      const t0 = performance.now();
      try {
        const reply = await send(to, call.path, call.body, call.headers);
        if (reply.status === 200) samples.push(performance.now() - t0);
        else throw new Error(`HTTP ${reply.status} ${reply.body.toString('utf8').slice(0, 200)}`);
      } catch (error) {
        errors++;
        firstError ??= error instanceof Error ? error.message : String(error);
      }
    }
  };
  await Promise.all(Array.from({ length: clients }, loop));
  const wallMs = performance.now() - started;
  return { samples, errors, firstError, wallMs };
}
