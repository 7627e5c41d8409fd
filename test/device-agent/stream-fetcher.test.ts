import { createHook } from 'node:async_hooks';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createJobDocument, type JobDocument } from '../../device-agent/protocol/index.js';
import { StreamFetcher, type DownloadOptions } from '../../device-agent/stream-fetcher.js';
import { createTransport } from '../../device-agent/transport/index.js';
import type { Transport } from '../../device-agent/transport/types.js';
import { closeBroker, connectBroker } from '../../fleet/mqtt.js';
import { StreamsServer, type BlockFaultHook } from '../../fleet/streams-server.js';
import { startBroker, type TestBroker } from '../helpers/broker.js';
import { suiteTmpDir } from '../helpers/tmp.js';
import { CONNECT_TIMEOUT_MS, TEST_RECONNECT } from './transport/suite.js';

/**
 * The fetch loop against a real broker and the fleet's real streams service (its TEST HOOK drops or corrupts
 * blocks). Timers are watched with async_hooks: every timer the loop creates must be gone when `fetch` settles.
 */
const THING = 'fetcher-1';
const STREAM = 'fetch-stream';
const BLOCK = 1024; // bytes
const FILE_BYTES = 40 * BLOCK + 100; // 41 blocks, the last one short
const SHORT_TIMEOUT_MS = 150; // ms: a dropped block is asked for again this soon
const LONG_TIMEOUT_MS = 600_000; // ms: a fetch that must end by an event, never by a timeout
const SHA = 'a'.repeat(64);

let broker: TestBroker;
let fleet: MqttClient;
let server: StreamsServer;
let transport: Transport;
let tmp: { dir: string; dispose: () => Promise<void> };
let content: Buffer;
let hook: BlockFaultHook = () => 'send';
let document: JobDocument;

/** Timers created by the fetch loop's own code (the first application frame of the creating stack), still alive. */
const live = new Set<number>();
const timerHook = createHook({
  init(asyncId, type) {
    if (type !== 'Timeout') return;
    const frames = (new Error().stack ?? '').split('\n').filter((line) => !line.includes('/test/'));
    const frame = frames.find((line) => /\/(device-agent|node_modules)\//.test(line));
    if (frame !== undefined && /\/device-agent\/(stream-fetcher|wake|block-window)\.ts/.test(frame)) live.add(asyncId);
  },
  destroy(asyncId) {
    live.delete(asyncId);
  },
});

/** Destroy hooks run from the immediate queue: two turns of it see every timer cleared before now. */
async function settledTimers(): Promise<number> {
  for (let i = 0; i < 2; i++) await new Promise((resolve) => setImmediate(resolve));
  return live.size;
}

beforeAll(async () => {
  broker = await startBroker();
  tmp = await suiteTmpDir();
  content = randomBytes(FILE_BYTES);
  await writeFile(join(tmp.dir, 'file.bin'), content);
  fleet = await connectBroker({ url: broker.urls.tcp });
  server = new StreamsServer({ client: fleet, testHooks: { onBlock: (event) => hook(event) } });
  await server.addStream({ streamId: STREAM, files: [{ fileId: 1, path: join(tmp.dir, 'file.bin') }] });
  document = createJobDocument({
    model: { name: 'm', version: '1.0.0' },
    artifact: {
      streamId: STREAM,
      fileId: 1,
      indexFileId: 0,
      size: FILE_BYTES,
      sha256: SHA,
      indexSize: 1,
      indexSha256: SHA,
      blockSize: BLOCK,
    },
  });
  transport = createTransport('mqtt', {
    url: broker.urls.tcp,
    clientId: THING,
    reconnect: TEST_RECONNECT,
    connectTimeoutMs: CONNECT_TIMEOUT_MS,
  });
  await transport.connect();
  timerHook.enable();
});

afterAll(async () => {
  timerHook.disable();
  await transport.close();
  await server.close();
  await closeBroker(fleet);
  await broker.stop();
  await tmp.dispose();
});

function options(overrides: Partial<DownloadOptions> = {}): DownloadOptions {
  return {
    transport,
    thing: THING,
    document,
    dir: tmp.dir,
    encoding: 'cbor',
    maxInFlightBlocks: 8,
    requestTimeoutMs: SHORT_TIMEOUT_MS,
    maxStalls: 3,
    ...overrides,
  };
}

/** Fetches the file into memory; returns it and the bytes that arrived (duplicates and corrupt blocks included). */
async function fetchAll(opts: DownloadOptions): Promise<{ bytes: Buffer; arrived: number }> {
  const bytes = Buffer.alloc(FILE_BYTES);
  let arrived = 0;
  const blocks = Math.ceil(FILE_BYTES / BLOCK);
  await new StreamFetcher(opts, 1, FILE_BYTES, BLOCK).fetch(
    new Set(Array.from({ length: blocks }, (_, i) => i)),
    (block, data) => {
      if (!content.subarray(block * BLOCK, block * BLOCK + data.length).equals(data)) return Promise.resolve(false);
      bytes.set(data, block * BLOCK);
      return Promise.resolve(true);
    },
    (n) => {
      arrived += n;
      return Promise.resolve();
    },
  );
  return { bytes, arrived };
}

describe('StreamFetcher', () => {
  it('fetches every block through a dropped and a corrupt one, and leaves no timer behind', async () => {
    hook = ({ thing, block, attempt }) => {
      if (thing !== THING || attempt > 1) return 'send';
      return block === 3 ? 'drop' : block === 5 ? 'corrupt' : 'send';
    };
    const { bytes, arrived } = await fetchAll(options());
    expect(bytes.equals(content)).toBe(true);
    expect(arrived).toBeGreaterThanOrEqual(FILE_BYTES + BLOCK); // block 5 came twice
    expect(await settledTimers()).toBe(0);
  });

  it('ends on abort while waiting for a block, with no timer left', async () => {
    const controller = new AbortController();
    hook = ({ thing }) => {
      if (thing === THING) controller.abort();
      return 'drop';
    };
    await expect(
      fetchAll(options({ requestTimeoutMs: LONG_TIMEOUT_MS, signal: controller.signal })),
    ).rejects.toMatchObject({ code: 'DEPLOYMENT_INTERRUPTED' });
    expect(await settledTimers()).toBe(0);
  });

  it('gives up with DOWNLOAD_FAILED after maxStalls timeouts with no block, having asked maxStalls + 1 times', async () => {
    const asked: number[] = [];
    hook = ({ thing, block, attempt }) => {
      if (thing === THING && block === 0) asked.push(attempt);
      return 'drop';
    };
    await expect(fetchAll(options({ maxStalls: 2 }))).rejects.toMatchObject({
      code: 'DOWNLOAD_FAILED',
      retryable: true,
      details: { streamId: STREAM },
    });
    expect(asked.length).toBe(3);
    expect(await settledTimers()).toBe(0);
  });

  it('fails at once with DOWNLOAD_FAILED when a block keeps failing its hash', async () => {
    hook = ({ thing, block }) => (thing === THING && block === 2 ? 'corrupt' : 'send');
    await expect(fetchAll(options({ requestTimeoutMs: LONG_TIMEOUT_MS }))).rejects.toMatchObject({
      code: 'DOWNLOAD_FAILED',
      message: expect.stringContaining('block 2 of file 1 failed its hash 5 times') as unknown,
    });
    expect(await settledTimers()).toBe(0);
  });
});
