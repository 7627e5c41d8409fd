/**
 * The device side of bench/delivery.ts, forked by it (a process of its own, as on a device): the agent's real
 * transport (MQTT.js over mTLS) and its real downloader (device-agent/download.ts or download-files.ts →
 * block-engine.ts → stream-fetcher.ts → block-window.ts). Commands arrive over IPC, one at a time:
 *   { kind: 'raw', bytes }      subscribe to the bench topic, answer 'ready', then 'done' when `bytes` have arrived
 *   { kind: 'download', dir }   fetch the artifact into `dir` (fresh), answer 'done' with the figures
 * Every answer carries the CPU time this process spent (user + system, ms) on that command.
 */
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { Session } from 'node:inspector/promises';
import { join } from 'node:path';
import type { JobDocument } from '../device-agent/protocol/index.js';
import { downloadArtifact, type DownloadProgress } from '../device-agent/download.js';
import { downloadFiles } from '../device-agent/download-files.js';
import { createTransport } from '../device-agent/transport/index.js';

export interface DeviceSettings {
  readonly url: string;
  readonly thing: string;
  readonly tls: { readonly ca: string; readonly cert: string; readonly key: string };
  readonly document: JobDocument;
  readonly maxInFlightBlocks: number;
  readonly rawTopic: string;
  /** Where to write a .cpuprofile of each download (the inspector's profiler, the download only). */
  readonly profileDir?: string;
}

export type DeviceCommand = { kind: 'raw'; bytes: number } | { kind: 'download'; dir: string } | { kind: 'exit' };

export interface DeviceAnswer {
  readonly kind: 'ready' | 'done' | 'failed';
  readonly ms?: number;
  readonly cpuMs?: number;
  readonly bytesFetched?: number;
  readonly error?: string;
}

const settings = JSON.parse(process.argv[2] ?? '{}') as DeviceSettings;
const send = (answer: DeviceAnswer) => process.send?.(answer);
const cpuMs = (since: NodeJS.CpuUsage) => {
  const used = process.cpuUsage(since);
  return (used.user + used.system) / 1000;
};

const transport = createTransport('mqtt', {
  url: settings.url,
  clientId: settings.thing,
  tls: settings.tls,
  persistentSession: false,
});
await transport.connect();

async function raw(bytes: number): Promise<void> {
  let received = 0;
  let started = 0;
  let cpu = process.cpuUsage();
  await new Promise<void>((resolve) => {
    const off = transport.onMessage(({ topic, payload }) => {
      if (topic !== settings.rawTopic) return;
      if (received === 0) {
        started = performance.now();
        cpu = process.cpuUsage();
      }
      received += payload.length;
      if (received >= bytes) {
        off();
        resolve();
      }
    });
    void transport.subscribe([settings.rawTopic], 1).then(() => send({ kind: 'ready' }));
  });
  const ms = performance.now() - started;
  await transport.unsubscribe([settings.rawTopic]);
  send({ kind: 'done', ms, cpuMs: cpuMs(cpu) });
}

let downloads = 0;

async function download(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
  let fetched = 0;
  const session = settings.profileDir === undefined ? undefined : new Session();
  session?.connect();
  await session?.post('Profiler.enable');
  await session?.post('Profiler.start');
  const cpu = process.cpuUsage();
  const started = performance.now();
  const options = {
    transport,
    thing: settings.thing,
    document: settings.document,
    dir,
    encoding: 'cbor' as const,
    maxInFlightBlocks: settings.maxInFlightBlocks,
    requestTimeoutMs: 5000,
    maxStalls: 12,
    onProgress: (p: DownloadProgress) => {
      fetched = p.bytesFetched;
    },
  };
  if (settings.document.artifact.layout === 'files')
    await downloadFiles({ ...options, decide: (index) => Promise.resolve(index.files.map((f) => f.path)) });
  else await downloadArtifact(options);
  const ms = performance.now() - started;
  const used = cpuMs(cpu);
  if (session !== undefined && settings.profileDir !== undefined) {
    const { profile } = await session.post('Profiler.stop');
    await mkdir(settings.profileDir, { recursive: true });
    await writeFile(join(settings.profileDir, `device-${++downloads}.cpuprofile`), JSON.stringify(profile));
    session.disconnect();
  }
  send({ kind: 'done', ms, cpuMs: used, bytesFetched: fetched });
  await rm(dir, { recursive: true, force: true });
}

process.on('message', (command: DeviceCommand) => {
  const run =
    command.kind === 'raw'
      ? raw(command.bytes)
      : command.kind === 'download'
        ? download(command.dir)
        : transport.close().then(() => process.exit(0));
  run.catch((error: unknown) => send({ kind: 'failed', error: String((error as Error).stack ?? error) }));
});
send({ kind: 'ready' });
