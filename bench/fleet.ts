/**
 * The fleet's numbers in README.md ("Fleet"):  npx tsx bench/fleet.ts [--things 1000] [--devices 50] [--mb 50] [--json]
 *   [--only bookkeeping]  (part 1 alone: no build, no broker)
 * 1) Bookkeeping on SQLite and on PostgreSQL in the same run: 1,000 things registered from status messages, one
 *    deployment creating an execution for each, then every execution moved QUEUED → IN_PROGRESS → SUCCEEDED through
 *    the Jobs handlers' store path (conditional updates, event log), 8 devices' worth of requests in flight.
 *    statusCpuUs: this process's CPU microseconds per status message (on SQLite, all of its cost).
 * 2) Memory of `fleet serve` (from dist/, a child process, SQLite) with 1,000 registered things while a 50 MB artifact
 *    streams to 50 devices (light devices in this process: the agent's Jobs client and verified block downloader).
 * Run `npm run build` first. The machine is shared: take the ranges over a few runs, not one figure.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { connectAsync } from 'mqtt';
import { createDeployment } from '../fleet/deployments/create.js';
import { StoreExecutions } from '../fleet/service/jobs-store.js';
import { type FleetStore, openStore } from '../fleet/store/index.js';
import { artifactRecord } from '../test/helpers/fleet-records.js';
import { sampleCnnArtifact } from '../test/helpers/artifacts.js';
import { startBroker } from '../test/helpers/broker.js';
import { LightDevice } from '../test/helpers/fleet-device.js';
import { postgresUnavailable, startPostgres } from '../test/helpers/postgres.js';
import { suiteTmpDir } from '../test/helpers/tmp.js';

const { values } = parseArgs({
  options: {
    things: { type: 'string', default: '1000' },
    devices: { type: 'string', default: '50' },
    mb: { type: 'string', default: '50' },
    json: { type: 'boolean', default: false },
    only: { type: 'string' },
  },
});
const THINGS = Number(values.things);
const DEVICES = Number(values.devices);
const MB = Number(values.mb);
const CONCURRENCY = 8; // requests in flight during the transition phase
const ROOT = join(import.meta.dirname, '..');
const BOOKKEEPING_ONLY = values.only === 'bookkeeping';
if (values.only !== undefined && !BOOKKEEPING_ONLY) throw new Error(`--only takes bookkeeping, not ${values.only}`);
if (!BOOKKEEPING_ONLY && !existsSync(join(ROOT, 'dist', 'cli', 'main.js')))
  throw new Error('run `npm run build` first: fleet serve runs from dist/');
const progress = (line: string) => process.stderr.write(`${line}\n`);
const { dir, dispose } = await suiteTmpDir('outpost-bench-fleet-');
const results: Record<string, unknown> = {};

async function bookkeeping(store: FleetStore): Promise<Record<string, number>> {
  const now = () => Date.now();
  let t = performance.now();
  const cpu = process.cpuUsage();
  for (let i = 0; i < THINGS; i++) {
    await store.recordStatus({
      name: `t-${i}`,
      connected: true,
      atMs: now(),
      target: { profile: 'x86_64:avx2', arch: 'x86_64' },
    });
  }
  const statusPerS = THINGS / ((performance.now() - t) / 1000);
  // This process's CPU time per status: on SQLite all of the work, and steadier than the rate on a shared machine.
  const { user, system } = process.cpuUsage(cpu);
  const statusCpuUs = (user + system) / THINGS;
  const artifact = await store.putArtifact(artifactRecord(1));
  t = performance.now();
  const things = Array.from({ length: THINGS }, (_, i) => `t-${i}`);
  const d = await createDeployment(store, { artifacts: [artifact.sha256], things }, now());
  const createdPerS = THINGS / ((performance.now() - t) / 1000);
  const executions = new StoreExecutions(store, now);
  const queue = await store.listExecutions(d.id);
  t = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      for (let e = queue.shift(); e !== undefined; e = queue.shift()) {
        const view = await executions.view(e);
        const started = await executions.transition(view, 'IN_PROGRESS', { step: 'downloading' }, undefined);
        if (!started.ok) throw new Error(started.message);
        const done = await executions.transition(started.record, 'SUCCEEDED', { step: 'done' }, undefined);
        if (!done.ok) throw new Error(done.message);
      }
    }),
  );
  const transitionsPerS = (2 * THINGS) / ((performance.now() - t) / 1000);
  return {
    statusPerS: Math.round(statusPerS),
    statusCpuUs: Math.round(statusCpuUs),
    executionsCreatedPerS: Math.round(createdPerS),
    transitionsPerS: Math.round(transitionsPerS),
  };
}

progress(`bookkeeping: ${THINGS} things on SQLite`);
const sqlite = await openStore({ url: `sqlite:${join(dir, 'bench.db')}` });
results.sqlite = await bookkeeping(sqlite);
await sqlite.close();
const pgMissing = postgresUnavailable();
if (pgMissing === undefined) {
  progress(`bookkeeping: ${THINGS} things on PostgreSQL`);
  const server = await startPostgres();
  const pg = await openStore({ url: await server.database('bench') });
  results.postgres = await bookkeeping(pg);
  await pg.close();
  await server.stop();
} else results.postgres = `skipped: ${pgMissing}`;

// ── 2) memory of fleet serve while streaming ───────────────────────────────────────────────────────────────────
async function streaming(): Promise<Record<string, unknown>> {
  const broker = await startBroker();
  progress(`streaming: fleet serve with ${THINGS} things, a ${MB} MB artifact to ${DEVICES} devices (${broker.kind})`);
  const child = spawn(
    process.execPath,
    [
      join(ROOT, 'dist', 'cli', 'main.js'),
      'fleet',
      'serve',
      '--broker',
      broker.urls.tcp,
      '--data-dir',
      join(dir, 'fleet'),
      '--http-port',
      '0',
    ],
    {
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  let stderr = '';
  const url = await new Promise<string>((resolve, reject) => {
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
      const m = /fleet serving (http:\/\/\S+)/.exec(stderr);
      if (m?.[1] !== undefined) resolve(m[1]);
    });
    child.once('exit', () => reject(new Error(stderr)));
  });
  const rss = async () =>
    Number(/VmRSS:\s+(\d+)/.exec(await readFile(`/proc/${String(child.pid)}/status`, 'utf8'))?.[1] ?? 0) * 1024;
  const api = async (method: string, path: string, body?: unknown): Promise<unknown> =>
    (
      await fetch(`${url}${path}`, {
        method,
        ...(body === undefined ? {} : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }),
      })
    ).json();
  const idleRss = await rss();
  const peer = await connectAsync(broker.urls.tcp, { clientId: 'bench-registrar' });
  for (let i = 0; i < THINGS - DEVICES; i++) {
    await peer.publishAsync(
      `outpost/things/idle-${i}/status`,
      JSON.stringify({
        thing: `idle-${i}`,
        connected: false,
        host: { arch: 'x86_64', profile: 'x86_64:avx2', agentVersion: 'bench' },
      }),
      { qos: 1, retain: true },
    );
  }
  await peer.endAsync();
  const devices: LightDevice[] = [];
  for (let i = 0; i < DEVICES; i++) {
    devices.push(
      await LightDevice.start({
        url: broker.urls.tcp,
        thing: `dev-${i}`,
        dir: join(dir, 'devices'),
        target: { profile: 'x86_64:avx2', arch: 'x86_64' },
        maxInFlightBlocks: 8,
      }),
    );
  }
  for (;;) {
    const { things } = (await api('GET', '/v1/things')) as { things: unknown[] };
    if (things.length >= THINGS) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  const registeredRss = await rss();
  progress(`building a ${MB} MB artifact`);
  // base64 padding gzips to about 3/4 of its size: pad so that the archive is MB megabytes.
  const artifactDir = (await sampleCnnArtifact(join(dir, 'a'), { padBytes: Math.round((MB * 1024 * 1024 * 4) / 3) }))
    .dir;
  const { packArtifact } = await import('../runtime/artifact/index.js');
  const archive = await packArtifact(artifactDir, join(dir, 'a.tar.gz'));
  const upload = (await (
    await fetch(`${url}/v1/artifacts`, { method: 'POST', body: await readFile(archive.path) })
  ).json()) as { sha256: string };
  let peakRss = 0;
  const sampler = setInterval(() => void rss().then((r) => (peakRss = Math.max(peakRss, r))), 100);
  const t0 = performance.now();
  await api('POST', '/v1/deployments', {
    artifacts: [upload.sha256],
    things: devices.map((d) => d.thing),
    id: 'bench-stream',
  });
  for (let done = 0; done < DEVICES;) {
    await new Promise((r) => setTimeout(r, 500));
    done = devices.filter((d) => d.received.length > 0).length;
    process.stderr.write(`\r${done}/${DEVICES} devices done, fleet RSS ${(peakRss / 2 ** 20).toFixed(0)} MB peak`);
  }
  const seconds = (performance.now() - t0) / 1000;
  clearInterval(sampler);
  process.stderr.write('\n');
  const health = (await api('GET', '/v1/health')) as { stats: { bytesServed: number } };
  const figures = {
    broker: broker.kind,
    things: THINGS,
    devices: DEVICES,
    artifactMB: Math.round(archive.bytes / 2 ** 20),
    seconds: Number(seconds.toFixed(1)),
    servedMB: Math.round(health.stats.bytesServed / 2 ** 20),
    throughputMBps: Number((health.stats.bytesServed / 2 ** 20 / seconds).toFixed(1)),
    rssIdleMB: Math.round(idleRss / 2 ** 20),
    rssRegisteredMB: Math.round(registeredRss / 2 ** 20),
    rssPeakStreamingMB: Math.round(peakRss / 2 ** 20),
  };
  for (const d of devices) await d.close();
  child.kill('SIGTERM');
  await new Promise((r) => child.once('exit', r));
  await broker.stop();
  return figures;
}

if (!BOOKKEEPING_ONLY) results.streaming = await streaming();
await dispose();
if (values.json) console.log(JSON.stringify(results, null, 2));
else {
  for (const name of ['sqlite', 'postgres']) {
    const r = results[name];
    console.log(typeof r === 'string' ? `${name}: ${r}` : `${name}: ${JSON.stringify(r)}`);
  }
  if (results.streaming !== undefined) console.log(`streaming: ${JSON.stringify(results.streaming)}`);
}
