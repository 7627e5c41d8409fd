import {
  type GetStreamRequest,
  type StreamEncoding,
  type StreamRejected,
  blockCount,
  blockLength,
  dataMessageFrame,
  decodeDescribeStreamRequest,
  decodeGetStreamRequest,
  encodeStreamMessage,
  MAX_RESPONSE_BYTES_PER_REQUEST,
  parseTopic,
  serviceFilters,
  streamTopics,
} from '../device-agent/protocol/index.js';
import { OutpostError, messageOf } from '../runtime/errors.js';
import { logger } from '../runtime/log.js';
import { Inflight } from './inflight.js';
import { checkName } from './protocol-errors.js';
import {
  type ServedStream,
  type StreamDefinition,
  type StreamStats,
  type StreamsServerOptions,
  emptyStats,
} from './stream-types.js';
export type {
  BlockEvent,
  BlockFaultHook,
  StreamDefinition,
  StreamStats,
  StreamsServerOptions,
} from './stream-types.js';
export type { StreamFile } from './stream-files.js';
import { type OpenStreamFile, closeStreamFiles, openStreamFiles, readBlock, selectBlocks } from './stream-files.js';

/**
 * Plays AWS IoT MQTT-based file delivery for streams served from local files (developer guide,
 * mqtt-based-file-delivery-in-devices): DescribeStream on `…/describe/{json|cbor}`, GetStream on `…/get/{json|cbor}`,
 * one `…/data/{encoding}` message per block, errors on `…/rejected/{encoding}` with the guide's codes.
 *
 * Memory is bounded whatever the file size: blocks are read with positional reads into one buffer per block being
 * sent, a request yields at most 128 KB of blocks (the service limit), and at most `maxConcurrentRequests` requests are
 * served at once; with QoS 1 each block waits for the broker's PUBACK, which paces the server to the broker.
 */
const log = logger('fleet.streams');

export class StreamsServer {
  private readonly streams = new Map<string, ServedStream>();
  private readonly attempts = new Map<string, number>();
  private readonly qos: 0 | 1;
  private readonly budget: number;
  private readonly maxConcurrent: number;
  private active = 0;
  private readonly waiting: (() => void)[] = [];
  private readonly listener = (topic: string, payload: Buffer): void => {
    this.dispatch(topic, payload);
  };
  private readonly inflight = new Inflight();
  private readonly resolving = new Map<string, Promise<ServedStream | undefined>>();
  private closing = false;
  private closed = false;

  constructor(private readonly options: StreamsServerOptions) {
    this.qos = options.qos ?? 1;
    this.budget = options.maxBytesPerRequest ?? MAX_RESPONSE_BYTES_PER_REQUEST;
    this.maxConcurrent = options.maxConcurrentRequests ?? 8;
    options.client.on('message', this.listener);
  }

  /** Opens the stream's files and subscribes to its requests from every thing. */
  async addStream(definition: StreamDefinition): Promise<void> {
    const streamId = checkName('stream id', definition.streamId);
    if (this.streams.has(streamId)) {
      throw new OutpostError('INVALID_ARGUMENT', `stream ${streamId} is already served`, { details: { streamId } });
    }
    const files = await openStreamFiles(streamId, definition.files);
    this.streams.set(streamId, {
      streamId,
      resolved: false,
      lastUsed: Date.now(),
      inUse: 0,
      version: definition.version ?? 1,
      description: definition.description ?? '',
      files,
      stats: emptyStats(),
    });
    await this.options.client.subscribeAsync([...serviceFilters.streamRequests(streamId)], { qos: 1 });
    log.info({ streamId, files: [...files.values()].map((f) => ({ f: f.fileId, z: f.size })) }, 'serving stream');
  }

  /** Subscribes the source's filters (streams found on demand). */
  async start(): Promise<void> {
    const filters = this.options.source?.filters;
    if (filters !== undefined) await this.options.client.subscribeAsync([...filters], { qos: 1 });
  }

  async removeStream(streamId: string): Promise<void> {
    const stream = this.streams.get(streamId);
    if (stream === undefined) return;
    this.streams.delete(streamId);
    if (stream.resolved) {
      await closeStreamFiles(stream.files);
      return;
    }
    if (this.options.client.connected) {
      await this.options.client.unsubscribeAsync([...serviceFilters.streamRequests(streamId)]);
    }
    await closeStreamFiles(stream.files);
  }

  /** Counters for one stream, or summed over all. */
  stats(streamId?: string): StreamStats {
    const total = emptyStats();
    for (const stream of this.streams.values()) {
      if (streamId !== undefined && stream.streamId !== streamId) continue;
      for (const key of Object.keys(total) as (keyof StreamStats)[]) total[key] += stream.stats[key];
    }
    return total;
  }

  /** Stops serving (the client stays connected: it is the caller's). */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    this.options.client.removeListener('message', this.listener);
    // Requests already taken finish (their files stay open until then); new ones are not taken.
    await this.inflight.settle();
    this.closed = true;
    for (const streamId of [...this.streams.keys()]) await this.removeStream(streamId);
  }

  private dispatch(topic: string, payload: Buffer): void {
    const parsed = parseTopic(topic);
    if (parsed?.api !== 'streams' || (parsed.operation !== 'describe' && parsed.operation !== 'get')) return;
    if (!this.streams.has(parsed.streamId) && this.options.source === undefined) return;
    if (this.options.accept !== undefined && !this.options.accept(parsed.thing)) return;
    const { thing, operation, encoding } = parsed;
    const task = this.limited(async () => {
      const stream = this.streams.get(parsed.streamId) ?? (await this.resolveStream(parsed.streamId));
      if (stream === undefined) return;
      stream.inUse++;
      stream.lastUsed = Date.now();
      try {
        await this.serve(stream, topic, thing, operation, encoding, payload);
      } finally {
        stream.inUse--;
      }
    });
    this.inflight.track(task, (error) => {
      log.error({ err: error, topic }, 'stream request failed');
    });
  }

  /** Looks a stream up in the source and opens it; one lookup per stream id at a time. */
  private async resolveStream(streamId: string): Promise<ServedStream | undefined> {
    const source = this.options.source;
    if (source === undefined || this.closed) return undefined;
    let pending = this.resolving.get(streamId);
    if (pending === undefined) {
      pending = (async () => {
        const definition = await source.resolve(streamId);
        if (definition === undefined || this.closed) return undefined;
        const files = await openStreamFiles(streamId, definition.files);
        const stream: ServedStream = {
          streamId,
          resolved: true,
          lastUsed: Date.now(),
          inUse: 0,
          version: definition.version ?? 1,
          description: definition.description ?? '',
          files,
          stats: emptyStats(),
        };
        this.streams.set(streamId, stream);
        await this.evictIdle();
        return stream;
      })().finally(() => this.resolving.delete(streamId));
      this.resolving.set(streamId, pending);
    }
    return pending;
  }

  /** Over the bound, the least recently used idle streams found on demand are closed (found again when asked). */
  private async evictIdle(): Promise<void> {
    const bound = this.options.maxOpenStreams ?? 64;
    const idle = [...this.streams.values()]
      .filter((s) => s.resolved && s.inUse === 0)
      .sort((a, b) => a.lastUsed - b.lastUsed);
    while (this.streams.size > bound && idle.length > 0) {
      const victim = idle.shift();
      if (victim !== undefined) await this.removeStream(victim.streamId);
    }
  }

  private async serve(
    stream: ServedStream,
    topic: string,
    thing: string,
    operation: 'describe' | 'get',
    encoding: StreamEncoding | 'invalid',
    payload: Buffer,
  ): Promise<void> {
    if (encoding === 'invalid') {
      // The guide: "InvalidTopic: The MQTT topic of the stream message is invalid"; the reply goes out in JSON.
      await this.reject(stream, thing, 'json', {
        o: 'InvalidTopic',
        m: `${topic}: the last segment must be json or cbor`,
      });
    } else if (operation === 'describe') await this.describe(stream, thing, encoding, payload);
    else {
      try {
        await this.get(stream, thing, encoding, payload);
      } catch (error) {
        // A file that cannot be read (truncated, removed) is the service's fault: say so rather than go silent,
        // so the device fails fast instead of waiting out its stall limit ("InternalError" in the guide's list).
        await this.reject(stream, thing, encoding, { o: 'InternalError', m: messageOf(error) });
        throw error;
      }
    }
  }

  private async describe(
    stream: ServedStream,
    thing: string,
    encoding: StreamEncoding,
    payload: Buffer,
  ): Promise<void> {
    stream.stats.describeRequests++;
    const request = decodeDescribeStreamRequest(encoding, payload);
    if (!request.ok) return this.reject(stream, thing, encoding, request.rejection);
    const files = [...stream.files.values()]
      .sort((a, b) => a.fileId - b.fileId)
      .map((f) => ({ f: f.fileId, z: f.size }));
    const message = { ...request.value, s: stream.version, d: stream.description, r: files };
    await this.publish(
      streamTopics.description(thing, stream.streamId, encoding),
      encodeStreamMessage(encoding, message),
    );
  }

  private async get(stream: ServedStream, thing: string, encoding: StreamEncoding, payload: Buffer): Promise<void> {
    stream.stats.getRequests++;
    const decoded = decodeGetStreamRequest(encoding, payload);
    if (!decoded.ok) return this.reject(stream, thing, encoding, decoded.rejection);
    const request = decoded.value;
    const token = request.c === undefined ? {} : { c: request.c };
    if (request.s !== undefined && request.s !== stream.version) {
      return this.reject(stream, thing, encoding, {
        o: 'VersionMismatch',
        m: `stream ${stream.streamId} is at version ${stream.version}, not ${request.s}`,
        ...token,
      });
    }
    const file = stream.files.get(request.f);
    if (file === undefined) {
      return this.reject(stream, thing, encoding, {
        o: 'ResourceNotFound',
        m: `stream ${stream.streamId} has no file ${request.f}; files: ${[...stream.files.keys()].join(', ')}`,
        ...token,
      });
    }
    const total = blockCount(file.size, request.l);
    const offset = request.o ?? 0;
    if (offset >= total) {
      return this.reject(stream, thing, encoding, {
        o: 'OffsetOutOfBounds',
        m: `block ${offset} is past the end of file ${file.fileId} (${total} blocks of ${request.l} bytes)`,
        ...token,
      });
    }
    for (const block of selectBlocks(request, total, this.budget)) {
      await this.sendBlock(stream, thing, encoding, file, request, block);
    }
  }

  private async sendBlock(
    stream: ServedStream,
    thing: string,
    encoding: StreamEncoding,
    file: OpenStreamFile,
    request: GetStreamRequest,
    block: number,
  ): Promise<void> {
    const frame = dataMessageFrame(
      encoding,
      { ...(request.c === undefined ? {} : { c: request.c }), f: file.fileId, i: block },
      blockLength(file.size, request.l, block),
    );
    const payload = await readBlock(file, request.l, block, frame.payload);
    const fault = this.fault(stream, thing, file.fileId, block);
    if (fault === 'drop') {
      stream.stats.blocksDropped++;
      return;
    }
    if (fault === 'corrupt' && payload.length > 0) {
      payload[0] = (payload[0] ?? 0) ^ 0xff;
      stream.stats.blocksCorrupted++;
    }
    await this.publish(streamTopics.data(thing, stream.streamId, encoding), frame.message());
    stream.stats.blocksServed++;
    stream.stats.bytesServed += payload.length;
    this.options.onServed?.({ streamId: stream.streamId, thing, fileId: file.fileId, bytes: payload.length });
  }

  private fault(stream: ServedStream, thing: string, fileId: number, block: number): 'send' | 'corrupt' | 'drop' {
    const hook = this.options.testHooks?.onBlock;
    if (hook === undefined) return 'send';
    const key = `${thing}\n${stream.streamId}\n${fileId}\n${block}`;
    const attempt = (this.attempts.get(key) ?? 0) + 1;
    this.attempts.set(key, attempt);
    return hook({ streamId: stream.streamId, thing, fileId, block, attempt });
  }

  private async reject(
    stream: ServedStream,
    thing: string,
    encoding: StreamEncoding,
    rejection: StreamRejected,
  ): Promise<void> {
    stream.stats.rejected++;
    log.debug({ thing, streamId: stream.streamId, code: rejection.o }, rejection.m);
    await this.publish(
      streamTopics.rejected(thing, stream.streamId, encoding),
      encodeStreamMessage(encoding, rejection),
    );
  }

  private async publish(topic: string, payload: Uint8Array): Promise<void> {
    if (this.closed) return;
    await this.options.client.publishAsync(topic, Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength), {
      qos: this.qos,
    });
  }

  private async limited(task: () => Promise<void>): Promise<void> {
    while (this.active >= this.maxConcurrent) await new Promise<void>((resolve) => this.waiting.push(resolve));
    this.active++;
    try {
      await task();
    } finally {
      this.active--;
      this.waiting.shift()?.();
    }
  }
}
