/**
 * Delivery throughput (README "Device agent: delivery"):
 *   npx tsx bench/delivery.ts [--mb 100] [--block 130816] [--window 64] [--rounds 2] [--brokers mosquitto,aedes]
 *                             [--layout archive|files] [--profile DIR] [--json]
 * One artifact-sized random file served by the fleet's streams server (fleet/streams-server.ts, stream-files.ts)
 * and fetched by the agent's real downloader (device-agent/download.ts, stream-fetcher.ts, block-window.ts) in a
 * process of its own (bench/delivery-device.ts), over loopback with mTLS, CBOR, blocks of `--block` bytes (default
 * the largest whose CBOR data message fits IoT Core's 128 KiB: 130,816). The baseline, in the same run and through
 * the same broker: the same bytes as raw QoS 1 messages of the same size from the same fleet client to the same
 * device client (`--window` publishes outstanding), so the ratio says how close the block path is to what the
 * broker and the two MQTT.js clients can carry at all. Rounds alternate baseline and delivery. Each broker in turn:
 * Mosquitto (a child process, the test harness's config and ACL) and the embedded aedes broker (fleet/broker.ts,
 * in this process, as `fleet serve --broker` runs it). `--profile DIR` writes a .cpuprofile of each side there.
 * `--layout files`: the same bytes as the one artifact file of a files-layout stream (file 0 the delivery index,
 * file 1 the payload), fetched by device-agent/download-files.ts; both layouts share the block engine.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, open, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Session } from 'node:inspector/promises';
import { parseArgs } from 'node:util';
import type { MqttClient } from 'mqtt';
import {
  buildBlockIndexFromFile,
  createJobDocument,
  encodeBlockIndex,
  encodeDeliveryIndex,
  MAX_CBOR_BLOCK_SIZE,
} from '../device-agent/protocol/index.js';
import { closeBroker, connectBroker } from '../fleet/mqtt.js';
import { StreamsServer } from '../fleet/streams-server.js';
import { startBroker, type BrokerKind, type TestBroker } from '../test/helpers/broker.js';
import type { DeviceAnswer, DeviceCommand, DeviceSettings } from './delivery-device.js';

const { values } = parseArgs({
  options: {
    mb: { type: 'string', default: '100' },
    block: { type: 'string', default: String(MAX_CBOR_BLOCK_SIZE) },
    window: { type: 'string', default: '64' },
    'server-requests': { type: 'string' },
    rounds: { type: 'string', default: '2' },
    brokers: { type: 'string', default: 'mosquitto,aedes' },
    profile: { type: 'string' },
    layout: { type: 'string', default: 'archive' },
    json: { type: 'boolean', default: false },
  },
});
if (values.layout !== 'archive' && values.layout !== 'files') throw new Error('--layout is archive or files');
const LAYOUT = values.layout;
/** The one artifact file of the files layout's stream. */
const PAYLOAD_PATH = 'variants/payload.bin';
const BYTES = Math.round(Number(values.mb) * 1e6);
const BLOCK = Number(values.block);
const WINDOW = Number(values.window);
const ROUNDS = Number(values.rounds);
const BROKERS = values.brokers.split(',') as BrokerKind[];
const THING = 'bench-device';
const STREAM = 'bench-delivery';
const FLEET_IDENTITY = 'outpost-fleet';
const CLOCK_TICKS = 100; // /proc stat times are in USER_HZ: 100 on Linux (getconf CLK_TCK)
const progress = (line: string) => process.stderr.write(`${line}\n`);
const mbps = (bytes: number, ms: number) => bytes / 1e6 / (ms / 1000);

interface Round {
  readonly ms: number;
  readonly mbps: number;
  /** CPU time of the device process / the fleet process (which holds aedes when it is the broker), ms. */
  readonly deviceCpuMs: number;
  readonly fleetCpuMs: number;
  /** Mosquitto's CPU time (its /proc stat), ms; aedes's is in fleetCpuMs (it runs in this process). */
  readonly brokerCpuMs?: number;
  readonly bytesFetched?: number;
  /** 1-minute load average at the end of the round: the machine is shared, figures move with it. */
  readonly load: number;
}

/** The device process: one command at a time, its answers in order. */
class Device {
  private readonly answers: DeviceAnswer[] = [];
  private waiter: (() => void) | undefined;
  private constructor(private readonly child: ChildProcess) {
    child.on('message', (answer: DeviceAnswer) => {
      this.answers.push(answer);
      this.waiter?.();
    });
    child.on('exit', (code) => {
      this.answers.push({ kind: 'failed', error: `device process exited with ${code}` });
      this.waiter?.();
    });
  }

  static async start(settings: DeviceSettings): Promise<Device> {
    const child = fork(join(import.meta.dirname, 'delivery-device.ts'), [JSON.stringify(settings)]);
    const device = new Device(child);
    await device.next('ready');
    return device;
  }

  send(command: DeviceCommand): void {
    this.child.send(command);
  }

  async next(kind: DeviceAnswer['kind']): Promise<DeviceAnswer> {
    while (this.answers.length === 0) await new Promise<void>((resolve) => (this.waiter = resolve));
    const answer = this.answers.shift() as DeviceAnswer;
    if (answer.kind === 'failed' || answer.kind !== kind) throw new Error(`device: ${answer.error ?? answer.kind}`);
    return answer;
  }

  async stop(): Promise<void> {
    const exited = new Promise((resolve) => this.child.once('exit', resolve));
    this.send({ kind: 'exit' });
    await exited;
  }
}

/** Baseline: the same bytes as raw QoS 1 messages of BLOCK bytes, at most WINDOW unacknowledged. */
/** CPU time so far of the Mosquitto process whose command line names `dir` (its config lives there), ms. */
async function mosquittoCpuMs(dir: string): Promise<number | undefined> {
  for (const pid of await readdir('/proc').catch(() => [])) {
    if (!/^\d+$/.test(pid)) continue;
    const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
    if (!cmdline.includes('mosquitto') || !cmdline.includes(dir)) continue;
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS; // utime + stime (fields 14, 15)
  }
  return undefined;
}

/** Runs a round, adding the broker's CPU time over it (Mosquitto only). */
async function withBrokerCpu(broker: TestBroker, run: () => Promise<Round>): Promise<Round> {
  const before = broker.kind === 'mosquitto' ? await mosquittoCpuMs(broker.dir) : undefined;
  const round = await run();
  const after = broker.kind === 'mosquitto' ? await mosquittoCpuMs(broker.dir) : undefined;
  return before === undefined || after === undefined ? round : { ...round, brokerCpuMs: after - before };
}

async function rawRound(fleet: MqttClient, device: Device, topic: string): Promise<Round> {
  const count = Math.ceil(BYTES / BLOCK);
  device.send({ kind: 'raw', bytes: count * BLOCK });
  await device.next('ready');
  const payload = randomBytes(BLOCK);
  const cpu = process.cpuUsage();
  let pending = 0;
  let wake: (() => void) | undefined;
  for (let i = 0; i < count; i++) {
    while (pending >= WINDOW) await new Promise<void>((resolve) => (wake = resolve));
    pending++;
    fleet.publish(topic, payload, { qos: 1 }, () => {
      pending--;
      wake?.();
    });
  }
  const done = await device.next('done');
  return figures(count * BLOCK, done, cpu);
}

async function deliveryRound(device: Device, dir: string): Promise<Round> {
  const cpu = process.cpuUsage();
  device.send({ kind: 'download', dir });
  const done = await device.next('done');
  return { ...figures(BYTES, done, cpu), bytesFetched: done.bytesFetched ?? 0 };
}

function figures(bytes: number, done: DeviceAnswer, cpu: NodeJS.CpuUsage): Round {
  const used = process.cpuUsage(cpu);
  const ms = done.ms ?? Number.NaN;
  return {
    ms,
    mbps: mbps(bytes, ms),
    deviceCpuMs: done.cpuMs ?? Number.NaN,
    fleetCpuMs: (used.user + used.system) / 1000,
    load: loadavg()[0] ?? Number.NaN,
  };
}

/** `run`, with this process's CPU profile written to `dir/name.cpuprofile` when profiling. */
async function profiled<T>(dir: string | undefined, name: string, run: () => Promise<T>): Promise<T> {
  if (dir === undefined) return run();
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.start');
  try {
    return await run();
  } finally {
    const { profile } = await session.post('Profiler.stop');
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, `${name}.cpuprofile`), JSON.stringify(profile));
    session.disconnect();
  }
}

async function writeRandomFile(path: string, bytes: number): Promise<void> {
  const file = await open(path, 'w');
  try {
    for (let written = 0; written < bytes; written += 1 << 20) {
      await file.write(randomBytes(Math.min(1 << 20, bytes - written)));
    }
  } finally {
    await file.close();
  }
}

async function runBroker(kind: BrokerKind, dir: string, files: Files): Promise<Record<string, Round[]>> {
  const broker: TestBroker = await startBroker({ kind });
  const fleetId = await broker.identity(FLEET_IDENTITY);
  const thingId = await broker.identity(THING);
  const fleet = await connectBroker({
    url: broker.urls.mtls,
    clientId: FLEET_IDENTITY,
    tls: { ca: broker.ca.caPath, cert: fleetId.certPath, key: fleetId.keyPath },
  });
  const server = new StreamsServer({
    client: fleet,
    ...(values['server-requests'] === undefined ? {} : { maxConcurrentRequests: Number(values['server-requests']) }),
  });
  await server.addStream({
    streamId: STREAM,
    files: [
      { fileId: 0, path: files.index },
      { fileId: 1, path: files.data },
    ],
  });
  const rawTopic = `outpost/things/${THING}/bench`;
  const profileDir = values.profile === undefined ? undefined : join(values.profile, kind);
  const device = await Device.start({
    url: broker.urls.mtls,
    thing: THING,
    tls: { ca: broker.ca.caPath, cert: thingId.certPath, key: thingId.keyPath },
    document: files.document,
    maxInFlightBlocks: WINDOW,
    rawTopic,
    ...(profileDir === undefined ? {} : { profileDir }),
  });
  const rounds: Record<string, Round[]> = { raw: [], delivery: [] };
  try {
    for (let round = 1; round <= ROUNDS; round++) {
      const raw = await withBrokerCpu(broker, () => rawRound(fleet, device, rawTopic));
      rounds.raw?.push(raw);
      progress(`${kind} round ${round}: raw QoS 1 ${raw.mbps.toFixed(1)} MB/s`);
      const delivery = await withBrokerCpu(broker, () =>
        profiled(profileDir, `fleet-${round}`, () => deliveryRound(device, join(dir, 'download'))),
      );
      rounds.delivery?.push(delivery);
      progress(
        `${kind} round ${round}: delivery ${delivery.mbps.toFixed(1)} MB/s (${(delivery.ms / 1000).toFixed(2)} s)`,
      );
    }
  } finally {
    await device.stop();
    await server.close();
    await closeBroker(fleet);
    await broker.stop();
  }
  return rounds;
}

interface Files {
  readonly data: string;
  readonly index: string;
  readonly document: ReturnType<typeof createJobDocument>;
}

async function prepare(dir: string): Promise<Files> {
  const data = join(dir, 'artifact.bin');
  const index = join(dir, 'index.json');
  progress(`writing ${BYTES / 1e6} MB of random bytes and its block index (${BLOCK}-byte blocks)`);
  await writeRandomFile(data, BYTES);
  const blockIndex = await buildBlockIndexFromFile(data, BLOCK);
  const indexBytes = encodeBlockIndex(blockIndex);
  await writeFile(index, indexBytes);
  if (LAYOUT === 'files') {
    // A delivery index of one file; its manifest is a placeholder (the bench's device does not check it).
    const delivery = encodeDeliveryIndex({
      algorithm: 'sha256',
      blockSize: BLOCK,
      manifest: Buffer.from('{}').toString('base64'),
      files: [{ path: PAYLOAD_PATH, fileId: 1, size: BYTES, sha256: blockIndex.sha256, blocks: blockIndex.blocks }],
    });
    await writeFile(index, delivery);
    const document = createJobDocument({
      model: { name: 'bench', version: '1.0.0' },
      artifact: {
        streamId: STREAM,
        layout: 'files',
        indexFileId: 0,
        size: BYTES,
        indexSize: delivery.length,
        indexSha256: createHash('sha256').update(delivery).digest('hex'),
        blockSize: BLOCK,
      },
    });
    return { data, index, document };
  }
  const document = createJobDocument({
    model: { name: 'bench', version: '1.0.0' },
    artifact: {
      streamId: STREAM,
      fileId: 1,
      indexFileId: 0,
      size: BYTES,
      sha256: blockIndex.sha256,
      indexSize: indexBytes.length,
      indexSha256: createHash('sha256').update(indexBytes).digest('hex'),
      blockSize: BLOCK,
    },
  });
  return { data, index, document };
}

const cpu = (rounds: readonly Round[], mb: number) =>
  [
    range(rounds.map((r) => r.deviceCpuMs / mb)),
    range(rounds.map((r) => r.fleetCpuMs / mb)),
    rounds.every((r) => r.brokerCpuMs !== undefined) ? range(rounds.map((r) => (r.brokerCpuMs ?? 0) / mb)) : 'in fleet',
  ].join(', ');

const range = (xs: readonly number[], digits = 1) => {
  const lo = Math.min(...xs).toFixed(digits);
  const hi = Math.max(...xs).toFixed(digits);
  return lo === hi ? lo : `${lo}–${hi}`;
};

const dir = await mkdtemp(join(tmpdir(), 'outpost-bench-delivery-'));
const results: Record<string, Record<string, Round[]>> = {};
try {
  const files = await prepare(dir);
  for (const kind of BROKERS) results[kind] = await runBroker(kind, dir, files);
} finally {
  await rm(dir, { recursive: true, force: true });
}

const settings = {
  mb: BYTES / 1e6,
  blockBytes: BLOCK,
  window: WINDOW,
  rounds: ROUNDS,
  layout: LAYOUT,
  encoding: 'cbor',
  tls: 'mTLS',
};
if (values.json) {
  process.stdout.write(`${JSON.stringify({ settings, results }, null, 2)}\n`);
} else {
  const lines = [
    `${settings.mb} MB, ${LAYOUT} layout, CBOR blocks of ${BLOCK} bytes, ${WINDOW} in flight, mTLS on loopback, ${ROUNDS} rounds`,
    '',
    '| broker | raw QoS 1 (baseline) | delivery | delivery / baseline | CPU ms per MB: device, fleet, broker (raw: same) | load |',
    '| --- | --- | --- | --- | --- | --- |',
  ];
  for (const [kind, rounds] of Object.entries(results)) {
    const raw = rounds.raw ?? [];
    const delivery = rounds.delivery ?? [];
    const ratios = delivery.map((d, i) => d.mbps / (raw[i]?.mbps ?? Number.NaN));
    const mb = BYTES / 1e6;
    lines.push(
      `| ${kind} | ${range(raw.map((r) => r.mbps))} MB/s | ${range(delivery.map((d) => d.mbps))} MB/s | ` +
        `${range(ratios, 2)} | ${cpu(delivery, mb)} (raw: ${cpu(raw, mb)}) | ` +
        `${range([...raw, ...delivery].map((r) => r.load))} |`,
    );
  }
  process.stdout.write(`${lines.join('\n')}\n`);
}
