import { randomBytes } from 'node:crypto';
import { open, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type StreamEncoding,
  bitmapForBlocks,
  decodeDataBlock,
  decodeStreamDescription,
  decodeStreamRejected,
  encodeStreamMessage,
  streamTopics,
} from '../../device-agent/protocol/index.js';
import { closeBroker, connectBroker } from '../../fleet/mqtt.js';
import { type BlockEvent, StreamsServer } from '../../fleet/streams-server.js';
import { startBroker, type TestBroker } from '../helpers/broker.js';
import { connectPeer, type Peer } from '../helpers/mqtt.js';
import { suiteTmpDir } from '../helpers/tmp.js';

const REPLY_TIMEOUT_MS = 3_000; // milliseconds for the server's answer
const STREAM = 'stream-1';
const THING = 'device-1';
const FILE_BYTES = 300_000; // bytes: 1,172 blocks of 256, 5 of 64 KiB
const SPARSE_BYTES = 8 * 1024 ** 3; // bytes: 8 GiB, no disk used
const HEAP_GROWTH_LIMIT = 64 * 1024 ** 2; // bytes: what serving blocks of an 8 GiB file may add to the heap

let broker: TestBroker;
let fleet: MqttClient;
let server: StreamsServer;
let device: Peer;
let tmp: { dir: string; dispose: () => Promise<void> };
let content: Buffer;
const faults: BlockEvent[] = [];

beforeAll(async () => {
  broker = await startBroker();
  tmp = await suiteTmpDir();
  content = randomBytes(FILE_BYTES);
  await writeFile(join(tmp.dir, 'file.bin'), content);
  const sparse = await open(join(tmp.dir, 'sparse.bin'), 'w');
  await sparse.truncate(SPARSE_BYTES);
  await sparse.write(Buffer.from('END'), 0, 3, SPARSE_BYTES - 3);
  await sparse.close();
  fleet = await connectBroker({ url: broker.urls.tcp });
  server = new StreamsServer({
    client: fleet,
    // TEST HOOK: block 7 of file 0 goes out corrupted the first time, block 9 is dropped the first time.
    testHooks: {
      onBlock: (event) => {
        if (event.fileId !== 0 || event.attempt > 1) return 'send';
        if (event.block === 7) faults.push(event);
        return event.block === 7 ? 'corrupt' : event.block === 9 ? 'drop' : 'send';
      },
    },
  });
  await server.addStream({
    streamId: STREAM,
    version: 3,
    description: 'test stream',
    files: [
      { fileId: 0, path: join(tmp.dir, 'file.bin') },
      { fileId: 5, path: join(tmp.dir, 'sparse.bin') },
    ],
  });
  device = await connectPeer(broker.urls.tcp, { mqtt5: false, clientId: THING });
  await device.subscribe(`$aws/things/${THING}/streams/#`);
});

afterAll(async () => {
  await device.close();
  await server.close();
  await closeBroker(fleet);
  await broker.stop();
  await tmp.dispose();
});

async function ask(
  encoding: StreamEncoding,
  op: 'describe' | 'get',
  body: Uint8Array,
  reply: 'description' | 'data' | 'rejected',
  count = 1,
): Promise<Buffer[]> {
  const topic = streamTopics[reply](THING, STREAM, encoding);
  const seen = device.inbox.on(topic).length;
  await device.publish(streamTopics[op](THING, STREAM, encoding), Buffer.from(body));
  return (await device.inbox.wait(topic, seen + count, REPLY_TIMEOUT_MS)).slice(seen);
}

const get = (encoding: StreamEncoding, request: Parameters<typeof encodeStreamMessage>[1], count = 1) =>
  ask(encoding, 'get', encodeStreamMessage(encoding, request), 'data', count);

const rejected = async (encoding: StreamEncoding, request: Parameters<typeof encodeStreamMessage>[1]) => {
  const [reply] = await ask(encoding, 'get', encodeStreamMessage(encoding, request), 'rejected');
  return decodeStreamRejected(encoding, reply ?? Buffer.alloc(0));
};

describe('streams server: DescribeStream', () => {
  it.each(['json', 'cbor'] as const)('answers in %s with version, description and file sizes', async (encoding) => {
    const [reply] = await ask(encoding, 'describe', encodeStreamMessage(encoding, { c: 'd1' }), 'description');
    expect(decodeStreamDescription(encoding, reply ?? Buffer.alloc(0))).toEqual({
      c: 'd1',
      s: 3,
      d: 'test stream',
      r: [
        { f: 0, z: FILE_BYTES },
        { f: 5, z: SPARSE_BYTES },
      ],
    });
  });
});

describe('streams server: GetStream', () => {
  it.each(['json', 'cbor'] as const)('%s: serves the blocks a bitmap asks for, and only those', async (encoding) => {
    const { offset, bitmap } = bitmapForBlocks([20, 21, 24, 43]); // the developer guide's example
    const replies = await get(encoding, { c: 'g1', s: 3, f: 0, l: 256, o: offset, n: 32, b: bitmap }, 4);
    const blocks = replies.map((r) => decodeDataBlock(encoding, r));
    expect(blocks.map((b) => b.i)).toEqual([20, 21, 24, 43]);
    for (const block of blocks) {
      expect(block).toMatchObject({ c: 'g1', f: 0, l: 256 });
      expect(Buffer.from(block.p)).toEqual(content.subarray(block.i * 256, block.i * 256 + 256));
    }
  });

  it('without a bitmap serves n blocks from o, the last one short', async () => {
    const last = Math.floor(FILE_BYTES / 1024);
    const replies = await get('json', { f: 0, l: 1024, o: last - 1, n: 5 }, 2);
    const blocks = replies.map((r) => decodeDataBlock('json', r));
    expect(blocks.map((b) => [b.i, b.l])).toEqual([
      [last - 1, 1024],
      [last, FILE_BYTES - last * 1024],
    ]);
  });

  it('yields at most 128 KB per request however many blocks are asked for', async () => {
    const before = server.stats(STREAM).blocksServed;
    const replies = await get('cbor', { f: 0, l: 65_536, o: 0, n: 5 }, 2);
    expect(replies.map((r) => decodeDataBlock('cbor', r).i)).toEqual([0, 1]);
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(server.stats(STREAM).blocksServed - before).toBe(2);
  });

  it('corrupts and drops blocks through the test hook, and serves them cleanly when asked again', async () => {
    const first = (await get('json', { f: 0, l: 256, o: 7, n: 3 }, 2)).map((r) => decodeDataBlock('json', r));
    expect(first.map((b) => b.i)).toEqual([7, 8]); // 9 was dropped
    expect(Buffer.from(first[0]?.p ?? [])).not.toEqual(content.subarray(7 * 256, 8 * 256));
    const again = (await get('json', { f: 0, l: 256, o: 7, b: Uint8Array.of(0b101) }, 2)).map((r) =>
      decodeDataBlock('json', r),
    );
    expect(again.map((b) => b.i)).toEqual([7, 9]);
    expect(Buffer.from(again[0]?.p ?? [])).toEqual(content.subarray(7 * 256, 8 * 256));
    expect(faults).toEqual([{ streamId: STREAM, thing: THING, fileId: 0, block: 7, attempt: 1 }]);
    expect(server.stats(STREAM)).toMatchObject({ blocksCorrupted: 1, blocksDropped: 1 });
  });

  it('reads blocks of an 8 GiB sparse file by position, with bounded memory', async () => {
    const l = 131_072;
    const lastBlock = SPARSE_BYTES / l - 1;
    const heapBefore = process.memoryUsage().heapUsed;
    for (let i = 0; i < 16; i++) {
      const [reply] = await get('cbor', { f: 5, l, o: lastBlock - i, n: 1 });
      const block = decodeDataBlock('cbor', reply ?? Buffer.alloc(0));
      expect(block.i).toBe(lastBlock - i);
      if (i === 0) expect(Buffer.from(block.p.subarray(l - 3)).toString()).toBe('END');
    }
    expect(process.memoryUsage().heapUsed - heapBefore).toBeLessThan(HEAP_GROWTH_LIMIT);
  });
});

describe('streams server: rejections', () => {
  it.each([
    ['VersionMismatch', { f: 0, l: 256, s: 2 }],
    ['ResourceNotFound', { f: 1, l: 256 }],
    ['OffsetOutOfBounds', { f: 0, l: 65_536, o: 5 }],
    ['BlockSizeOutOfBounds', { f: 0, l: 255 }],
    ['BlockCountLimitExceeded', { f: 0, l: 256, n: 98_305 }],
    ['InvalidRequest', { l: 256 }],
  ] as const)('%s', async (code, request) => {
    for (const encoding of ['json', 'cbor'] as const) {
      const reply = await rejected(encoding, { c: 'r1', ...request });
      expect(reply).toMatchObject({ o: code, c: 'r1' });
      expect(reply.m).not.toBe('');
    }
  });

  it('InvalidJson and InvalidCbor for undecodable requests', async () => {
    const [json] = await ask('json', 'get', Buffer.from('{"f":'), 'rejected');
    expect(decodeStreamRejected('json', json ?? Buffer.alloc(0)).o).toBe('InvalidJson');
    const [cbor] = await ask('cbor', 'get', Uint8Array.of(0xa1, 0x61), 'rejected');
    expect(decodeStreamRejected('cbor', cbor ?? Buffer.alloc(0)).o).toBe('InvalidCbor');
  });

  it('InvalidTopic on rejected/json for an encoding that is neither json nor cbor', async () => {
    const topic = streamTopics.rejected(THING, STREAM, 'json');
    const seen = device.inbox.on(topic).length;
    await device.publish(`$aws/things/${THING}/streams/${STREAM}/describe/xml`, '{}');
    const [reply] = (await device.inbox.wait(topic, seen + 1, REPLY_TIMEOUT_MS)).slice(seen);
    expect(decodeStreamRejected('json', reply ?? Buffer.alloc(0)).o).toBe('InvalidTopic');
  });
});
