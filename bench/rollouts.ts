/**
 * A rollout at fleet scale (README.md, "Fleet"):
 *   npx tsx bench/rollouts.ts [--devices 500] [--kib 64] [--strategy s [--then s]] [--abort …] [--fail-rate r] [--json]
 * One Mosquitto on this machine ($SYS every second), `fleet serve` as a child process on SQLite (from source through
 * tsx: its start-up is not measured), and `--devices` simulated devices in this process (device-agent/simulator/:
 * the agent's Jobs client, verified block download and artifact verification; a stand-in install). One deployment of
 * a `--kib` KiB artifact to all of them through `outpost fleet deploy` with the given strategy flags, then:
 * - wall time from the deployment's creation to the last SUCCEEDED (a device's final update answered);
 * - CPU time and peak RSS of `fleet serve` over that window (/proc), and its RSS idle with every device registered;
 * - PUBLISH messages through the broker per second ($SYS/broker/publish/messages/received + sent);
 * - with an abort (`--abort …`, `--fail-rate`): time from the first failure to the deployment leaving ACTIVE, and
 *   the devices outside the first wave that received the job (must be 0);
 * - the simulator's own RSS, CPU time and open file descriptors (one MQTT connection per device).
 * The machine is shared: take the ranges over a few runs, not one figure.
 */
import { readdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { connectAsync } from 'mqtt';
import { Simulator } from '../device-agent/simulator/index.js';
import type { DeploymentView } from '../fleet/index.js';
import { logLevelFromEnv, setLogLevel } from '../runtime/log.js';
import { startBroker } from '../test/helpers/broker.js';
import { runCli } from '../test/helpers/cli.js';
import { startFleet } from '../test/helpers/fleet.js';
import { suiteTmpDir } from '../test/helpers/tmp.js';
import { smallArtifact } from './rollout-artifact.js';

const { values } = parseArgs({
  options: {
    devices: { type: 'string', default: '500' },
    kib: { type: 'string', default: '64' },
    strategy: { type: 'string' },
    then: { type: 'string' },
    abort: { type: 'string', multiple: true },
    'fail-rate': { type: 'string', default: '0' },
    'guardrail-fail-rate': { type: 'string', default: '0' },
    latency: { type: 'string', default: '0' }, // ms
    seed: { type: 'string', default: '1' },
    'timeout-s': { type: 'string', default: '600' },
    json: { type: 'boolean', default: false },
  },
});
setLogLevel(logLevelFromEnv() ?? 'warn'); // 500 devices' info lines would be most of the output
const DEVICES = Number(values.devices);
const JOB = 'bench-rollout';
const SAMPLE_MS = 100; // ms between RSS samples of fleet serve
const POLL_MS = 1_000; // ms between looks at the deployment (each reads every execution: fleet CPU)
const SYS_INTERVAL_S = 1; // Mosquitto's $SYS period
const CLK_TCK = 100; // Linux USER_HZ: /proc/<pid>/stat counts CPU time in these
const progress = (line: string) => process.stderr.write(`${line}\n`);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const { dir, dispose } = await suiteTmpDir('outpost-bench-rollouts-');
const broker = await startBroker({ kind: 'mosquitto', sysIntervalSeconds: SYS_INTERVAL_S });
const fleet = await startFleet(['--broker', broker.urls.tcp, '--data-dir', join(dir, 'fleet')], {
  env: { OUTPOST_LOG_LEVEL: 'warn' },
});
const pid = fleet.child.pid ?? 0;
const cpuSeconds = async (): Promise<number> => {
  const fields = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1]?.split(' ') ?? [];
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK; // utime, stime (fields 14 and 15 of stat)
};
const rss = async (): Promise<number> =>
  Number(/VmRSS:\s+(\d+)/.exec(await readFile(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) * 1024;

// $SYS counters: the latest value of each, as Mosquitto publishes them every SYS_INTERVAL_S.
const sys = new Map<string, number>();
const watcher = await connectAsync(broker.urls.tcp, { clientId: 'bench-sys' });
watcher.on('message', (topic, payload) => sys.set(topic, Number(payload.toString())));
await watcher.subscribeAsync('$SYS/broker/publish/messages/+');
const published = () =>
  (sys.get('$SYS/broker/publish/messages/received') ?? 0) + (sys.get('$SYS/broker/publish/messages/sent') ?? 0);

const simulator = new Simulator({
  url: broker.urls.tcp,
  devices: DEVICES,
  prefix: 'sim-',
  seed: Number(values.seed),
  targets: [
    { target: { profile: 'x86_64:avx2', arch: 'x86_64' }, share: 0.5 },
    { target: { profile: 'arm64:cortex-a72', arch: 'arm64' }, share: 0.5 },
  ],
  offlineRate: 0,
  failRate: Number(values['fail-rate']),
  guardrailFailRate: Number(values['guardrail-fail-rate']),
  latencyMs: Number(values.latency),
  dir: join(dir, 'devices'),
  allowUnsigned: true,
});
const simCpu0 = process.cpuUsage();
let t = performance.now();
await simulator.start();
const startSeconds = (performance.now() - t) / 1000;
const simRssConnected = process.memoryUsage.rss();
progress(`${DEVICES} simulated devices connected in ${startSeconds.toFixed(1)} s (${simulator.errors.length} errors)`);
t = performance.now();
for (;;) {
  const r = await fleet.api('GET', '/v1/things');
  const things = (r.body as { things: { connected: boolean }[] }).things.filter((x) => x.connected);
  if (things.length >= DEVICES) break;
  await sleep(POLL_MS);
}
const registerSeconds = (performance.now() - t) / 1000;
const artifact = await smallArtifact(join(dir, 'artifact'), Number(values.kib) * 1024);
progress(`artifact ${(artifact.bytes / 1024).toFixed(1)} KiB; deploying (${values.strategy ?? 'all-at-once'})`);
await sleep(2 * SYS_INTERVAL_S * 1000); // a fresh $SYS reading before the deployment
const idleRss = await rss();
const cpu0 = await cpuSeconds();
const messages0 = published();
let peakRss = idleRss;
const sampler = setInterval(() => void rss().then((r) => (peakRss = Math.max(peakRss, r))), SAMPLE_MS);

const strategy = [
  ...(values.strategy === undefined ? [] : ['--strategy', values.strategy]),
  ...(values.then === undefined ? [] : ['--then', values.then]),
  ...(values.abort ?? []).flatMap((a) => ['--abort', a]),
];
const things = simulator.plan.map((d) => d.thing).join(',');
const cli = await runCli([
  'fleet',
  'deploy',
  artifact.dir,
  '--thing',
  things,
  '--job-id',
  JOB,
  '--fleet',
  fleet.url,
  ...strategy,
  '--json',
]);
if (cli.code !== 0) throw new Error(`fleet deploy failed: ${cli.stderr}`);
const created = Date.parse((JSON.parse(cli.stdout) as DeploymentView).createdAt ?? '');
const deadline = Date.now() + Number(values['timeout-s']) * 1000;
let view: DeploymentView;
let leftActiveMs: number | undefined;
for (;;) {
  view = await fleet.deployment(JOB);
  const open = view.executions.filter((e) => e.status === 'QUEUED' || e.status === 'IN_PROGRESS').length;
  // When it left ACTIVE: the deployment's own update time (ms), not this poll's.
  if (view.state !== 'ACTIVE') leftActiveMs ??= Date.parse(view.lastUpdatedAt ?? '') || Date.now();
  if (view.state !== 'ACTIVE' && open === 0) break;
  if (Date.now() > deadline) throw new Error(`deployment still ${view.state} with ${open} open executions`);
  const done = view.executions.length - open;
  process.stderr.write(`\r${done}/${view.executions.length} executions ended, state ${view.state}   `);
  await sleep(POLL_MS);
}
process.stderr.write('\n');
const cpu1 = await cpuSeconds();
clearInterval(sampler);
await sleep(2 * SYS_INTERVAL_S * 1000); // the counters of the window's last second
const messages = published() - messages0;
const mine = simulator.seen.filter((j) => j.jobId === JOB);
const succeeded = mine.filter((j) => j.status === 'SUCCEEDED');
const failed = mine.filter((j) => j.status === 'FAILED');
const lastSucceeded = Math.max(...succeeded.map((j) => j.endedMs));
const lastEnded = Math.max(...mine.map((j) => j.endedMs));
const windowSeconds = (lastEnded - created) / 1000;
const waveOf = (thing: string): number | null =>
  (view.executions.find((e) => e.thing === thing) as { wave?: number | null } | undefined)?.wave ?? null;
const outsideFirstWave = new Set(mine.filter((j) => (waveOf(j.thing) ?? 0) > 0).map((j) => j.thing));
const simCpu = process.cpuUsage(simCpu0);

const results = {
  devices: DEVICES,
  broker: broker.kind,
  artifactKiB: Number((artifact.bytes / 1024).toFixed(1)),
  strategy: strategy.join(' ') || 'all-at-once',
  failRate: Number(values['fail-rate']),
  state: view.state,
  connectSeconds: Number(startSeconds.toFixed(1)),
  registerSeconds: Number(registerSeconds.toFixed(1)),
  succeeded: succeeded.length,
  failed: failed.length,
  wallToLastSucceededSeconds: succeeded.length === 0 ? null : Number(((lastSucceeded - created) / 1000).toFixed(1)),
  fleetCpuSeconds: Number((cpu1 - cpu0).toFixed(1)),
  fleetRssIdleMB: Math.round(idleRss / 2 ** 20),
  fleetRssPeakMB: Math.round(peakRss / 2 ** 20),
  brokerPublishes: messages,
  brokerPublishesPerSecond: Math.round(messages / windowSeconds),
  firstFailureToEndSeconds:
    failed.length === 0 || leftActiveMs === undefined
      ? null
      : Number(((leftActiveMs - Math.min(...failed.map((j) => j.endedMs))) / 1000).toFixed(1)),
  // Only a rollout has waves (all-at-once: every execution's wave is null).
  devicesOutsideFirstWaveThatReceivedIt: view.executions.some((e) => waveOf(e.thing) !== null)
    ? outsideFirstWave.size
    : null,
  simulatorRssConnectedMB: Math.round(simRssConnected / 2 ** 20),
  simulatorRssMB: Math.round(process.memoryUsage.rss() / 2 ** 20),
  simulatorCpuSeconds: Number(((simCpu.user + simCpu.system) / 1e6).toFixed(1)),
  simulatorOpenFds: readdirSync('/proc/self/fd').length,
};
await watcher.endAsync();
await simulator.stop();
await fleet.stop();
await broker.stop();
await dispose();
if (values.json) console.log(JSON.stringify(results, null, 2));
else for (const [k, v] of Object.entries(results)) console.log(`${k.padEnd(40)} ${String(v)}`);
