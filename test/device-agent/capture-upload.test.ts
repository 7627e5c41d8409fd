import { createHash, randomBytes } from 'node:crypto';
import { readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { CaptureUploader, type CaptureChunk } from '../../device-agent/serving/capture-upload.js';
import { outpostTopics } from '../../device-agent/protocol/index.js';
import { Spool, type SpoolEntry } from '../../device-agent/storage/spool.js';
import { createTransport } from '../../device-agent/transport/index.js';
import type { Transport } from '../../device-agent/transport/types.js';
import { isOutpostError } from '../../runtime/errors.js';
import { CaptureWriter, type CaptureOptions } from '../../runtime/server/capture/writer.js';
import type { InferenceEvent } from '../../runtime/server/serving/service.js';
import { seededRandom } from '../../runtime/tensor/tensor.js';
import { startBroker, type TestBroker } from '../helpers/broker.js';
import { connectPeer, until, type Peer } from '../helpers/mqtt.js';
import { startProxy, type TcpProxy } from '../helpers/net.js';
import { tmpDir } from '../helpers/tmp.js';
import { CONNECT_TIMEOUT_MS, RECONNECT_TIMEOUT_MS, TEST_RECONNECT } from './transport/suite.js';

const UPLOAD_TIMEOUT_MS = 15_000; // milliseconds for every chunk of a test's files to reach the subscriber
const CHUNK_BYTES = 4096; // bytes of file per message: small, so every file takes several chunks

let broker: TestBroker;

beforeAll(async () => {
  broker = await startBroker();
});
afterAll(async () => {
  await broker.stop();
});

/** One call with a 16 KiB input and a 4 KiB output: side files and lines of several chunks each. */
function event(i: number): InferenceEvent {
  const random = seededRandom(i + 1);
  return {
    name: 'mlp',
    version: '1',
    ms: 2,
    feeds: { x: { data: Float32Array.from({ length: 4096 }, () => random()), dims: [1, 4096] } },
    outputs: { y: { type: 'float32', dims: [1, 1024], data: Float32Array.from({ length: 1024 }, () => random()) } },
  };
}

interface Device {
  readonly thing: string;
  readonly topic: string;
  readonly dir: string;
  readonly writer: CaptureWriter;
  readonly spool: Spool;
  readonly proxy: TcpProxy;
  readonly transport: Transport;
  readonly peer: Peer;
  uploader(options?: { chunksPerFlush?: number; send?: (entry: SpoolEntry) => Promise<void> }): CaptureUploader;
}

/** A device's capture side as the agent wires it: writer, spool, the MQTT.js transport behind a cuttable proxy. */
async function device(capture: Partial<CaptureOptions>): Promise<Device> {
  const thing = `capture-${randomBytes(4).toString('hex')}`;
  const topic = outpostTopics.capture(thing);
  const root = await tmpDir();
  const dir = join(root, 'capture');
  const writer = new CaptureWriter({
    dir,
    samplePercent: 100,
    maxFileBytes: 40_000,
    maxTotalBytes: 4 << 20,
    tensors: 'inline',
    ...capture,
  });
  const spool = new Spool(join(root, 'spool'), { maxEntries: 1000, maxBytes: 4 << 20 });
  await spool.open();
  const proxy = await startProxy(broker.ports.tcp);
  const transport = createTransport('mqtt', {
    url: `mqtt://127.0.0.1:${proxy.port}`,
    clientId: thing,
    reconnect: TEST_RECONNECT,
    connectTimeoutMs: CONNECT_TIMEOUT_MS,
  });
  const peer = await connectPeer(broker.urls.tcp, { mqtt5: broker.mqtt5 });
  await peer.subscribe(topic);
  const uploaders: CaptureUploader[] = [];
  onTestFinished(async () => {
    for (const u of uploaders) {
      u.stop();
      await u.idle();
    }
    await transport.close();
    await proxy.close();
    await peer.close();
    await writer.close();
  });
  return {
    thing,
    topic,
    dir,
    writer,
    spool,
    proxy,
    transport,
    peer,
    uploader: (options = {}) => {
      const uploader = new CaptureUploader({
        thing,
        capture: writer,
        spool,
        send: options.send ?? ((entry) => transport.publish(entry.topic, entry.payload, { qos: entry.qos })),
        connected: () => transport.connected,
        onConnectionChange: (handler) => transport.onConnectionChange(handler),
        chunkBytes: CHUNK_BYTES,
        chunksPerFlush: options.chunksPerFlush,
      });
      uploaders.push(uploader);
      return uploader;
    },
  };
}

/** Writes `n` calls and seals them; returns every sealed file's bytes by name, as on disk before any upload. */
async function capture(d: Device, n: number): Promise<Map<string, Buffer>> {
  for (let i = 0; i < n; i++) d.writer.observer.onInference(event(i));
  await d.writer.flush();
  await d.writer.rotate();
  const files = new Map<string, Buffer>();
  for (const f of await d.writer.sealedFiles()) files.set(f.name, await readFile(f.path));
  return files;
}

/** Files complete at the subscriber: chunks deduplicated by (file, seq), joined, checked against size and hash. */
function reassemble(messages: readonly Buffer[]): Map<string, Buffer> {
  const byFile = new Map<string, Map<number, CaptureChunk>>();
  for (const message of messages) {
    const chunk = JSON.parse(message.toString('utf8')) as CaptureChunk;
    const chunks = byFile.get(chunk.file) ?? new Map<number, CaptureChunk>();
    chunks.set(chunk.seq, chunk);
    byFile.set(chunk.file, chunks);
  }
  const files = new Map<string, Buffer>();
  for (const [name, chunks] of byFile) {
    const last = [...chunks.values()].find((c) => c.last);
    if (last === undefined || chunks.size !== last.seq + 1) continue;
    const bytes = Buffer.concat(
      Array.from({ length: chunks.size }, (_, seq) => Buffer.from(chunks.get(seq)?.data ?? '', 'base64')),
    );
    expect(bytes.length, name).toBe(last.bytes);
    expect(createHash('sha256').update(bytes).digest('hex'), name).toBe(last.sha256);
    files.set(name, bytes);
  }
  return files;
}

async function captureFilesLeft(dir: string): Promise<string[]> {
  return (await readdir(dir)).filter((n) => n.startsWith('capture-'));
}

function expectIdentical(received: Map<string, Buffer>, sent: Map<string, Buffer>): void {
  expect([...received.keys()].sort()).toEqual([...sent.keys()].sort());
  for (const [name, bytes] of sent) expect(received.get(name)?.equals(bytes), name).toBe(true);
}

describe('CaptureUploader over a real broker', () => {
  it('sends sealed files in chunks a subscriber reassembles byte for byte, then deletes them', async () => {
    const d = await device({ tensors: 'files', encryptionKey: randomBytes(32) });
    const sent = await capture(d, 4);
    expect(sent.size).toBe(4 * 3); // per call: the line file, the input's and the output's .npy.enc
    // One file goes missing before upload (an operator, the size cap): skipped and forgotten, not an error.
    const [gone] = [...sent.keys()];
    await rm(join(d.dir, gone ?? ''));
    sent.delete(gone ?? '');
    await d.transport.connect();
    await d.uploader().kick();

    await until(() => reassemble(d.peer.inbox.on(d.topic)).size === sent.size, UPLOAD_TIMEOUT_MS, 'every file');
    expectIdentical(reassemble(d.peer.inbox.on(d.topic)), sent);
    const chunks = d.peer.inbox.on(d.topic).map((m) => JSON.parse(m.toString()) as CaptureChunk);
    expect(Math.max(...chunks.map((c) => Buffer.from(c.data, 'base64').length))).toBe(CHUNK_BYTES);
    expect(chunks.filter((c) => c.sha256 !== undefined).every((c) => c.last)).toBe(true);
    expect(await captureFilesLeft(d.dir)).toEqual([]);
    expect(await d.writer.sealedFiles()).toEqual([]);
    expect(d.writer.stats().totalBytes).toBe(0);
    expect(d.spool.size).toBe(0);
  });

  it('does nothing offline (files stay, nothing spooled) and uploads on connect', async () => {
    const d = await device({ tensors: 'inline' });
    const sent = await capture(d, 3);
    const uploader = d.uploader();
    uploader.start();
    await uploader.kick();
    expect(d.spool.size).toBe(0);
    expect((await captureFilesLeft(d.dir)).sort()).toEqual([...sent.keys()].sort());

    await d.transport.connect(); // the reconnect handler runs a pass: no kick() from here on
    await until(() => reassemble(d.peer.inbox.on(d.topic)).size === sent.size, UPLOAD_TIMEOUT_MS, 'every file');
    expectIdentical(reassemble(d.peer.inbox.on(d.topic)), sent);
    await uploader.idle();
    expect(await captureFilesLeft(d.dir)).toEqual([]);
  });

  it('stops when the link drops mid-file, keeps the rest, and finishes after the reconnect', async () => {
    const d = await device({ tensors: 'inline' });
    const sent = await capture(d, 3);
    let published = 0;
    let cut = false;
    // The real publish, with the real network cut once at the 7th message (between two flushes of the spool).
    const send = async (entry: SpoolEntry): Promise<void> => {
      if (++published === 7 && !cut) {
        cut = true;
        await d.proxy.down();
        await until(() => !d.transport.connected, RECONNECT_TIMEOUT_MS, 'the transport to notice');
      }
      await d.transport.publish(entry.topic, entry.payload, { qos: entry.qos });
    };
    await d.transport.connect();
    const uploader = d.uploader({ chunksPerFlush: 2, send });
    uploader.start();
    await uploader.kick();
    expect(cut).toBe(true);
    expect(d.spool.size).toBeGreaterThan(0); // spooled chunks wait for the broker
    const left = await captureFilesLeft(d.dir);
    expect(left.length).toBeGreaterThan(0);
    expect(reassemble(d.peer.inbox.on(d.topic)).size).toBeLessThan(sent.size);

    await d.proxy.up();
    await until(() => reassemble(d.peer.inbox.on(d.topic)).size === sent.size, UPLOAD_TIMEOUT_MS, 'every file');
    expectIdentical(reassemble(d.peer.inbox.on(d.topic)), sent);
    await uploader.idle();
    expect(await captureFilesLeft(d.dir)).toEqual([]);
    expect(d.spool.size).toBe(0);
  });

  it('refuses a chunk size whose messages would pass IoT Core’s 128 KiB limit', async () => {
    const d = await device({});
    expect(() => new CaptureUploader({ ...uploaderOptions(d), chunkBytes: 100 * 1024 })).toThrow(/128|131072/);
    try {
      new CaptureUploader({ ...uploaderOptions(d), chunkBytes: 0 });
      expect.unreachable();
    } catch (error) {
      expect(isOutpostError(error, 'INVALID_ARGUMENT')).toBe(true);
    }
  });
});

function uploaderOptions(d: Device) {
  return {
    thing: d.thing,
    capture: d.writer,
    spool: d.spool,
    send: (entry: SpoolEntry) => d.transport.publish(entry.topic, entry.payload, { qos: entry.qos }),
    connected: () => d.transport.connected,
  };
}
