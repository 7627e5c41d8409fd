import { randomBytes } from 'node:crypto';
import { OutpostError, errorCategory, fromFsError, isOutpostError, messageOf } from '../runtime/errors.js';
import { logger } from '../runtime/log.js';
import {
  bitmapForBlocks,
  decodeDataBlock,
  decodeStreamRejected,
  encodeStreamMessage,
  maxBlocksPerRequest,
  streamTopics,
  type JobDocument,
  type StreamEncoding,
} from './protocol/index.js';
import type { Transport } from './transport/types.js';

const log = logger('agent.download');

export interface DownloadOptions {
  readonly transport: Transport;
  readonly thing: string;
  readonly document: JobDocument;
  /** `downloads/<jobId>/`: the partial file, the verified index and the arrivals log live here. */
  readonly dir: string;
  readonly encoding: StreamEncoding;
  /** Blocks in flight at once across requests: bounds memory to this many blocks. */
  readonly maxInFlightBlocks: number;
  /** A block not arrived this long after it was asked for is asked for again. */
  readonly requestTimeoutMs: number; // ms
  /** Consecutive timeouts with no new block before giving up (offline time does not count). */
  readonly maxStalls: number;
  readonly onProgress?: (progress: DownloadProgress) => void;
  readonly signal?: AbortSignal;
}

export interface DownloadProgress {
  readonly bytesTotal: number;
  /** Distinct verified bytes on disk. */
  readonly bytesReceived: number;
  /** Every block byte that arrived, duplicates and corrupt ones included, across restarts. */
  readonly bytesFetched: number;
}

/** A block that fails its hash this many times is not coming right: the source is broken, not the network. */
const MAX_BAD_ARRIVALS = 5;
/** InternalError rejections tolerated per fetch before the download fails. */
const MAX_INTERNAL_ERRORS = 3;

/**
 * Fetches one stream file over MQTT-based file delivery (developer guide, mqtt-based-file-delivery-in-devices):
 * GetStream requests by offset and bitmap, one `data` message per block. Used for the small index file (kept in
 * memory) and, through `downloadArtifact`, for the archive (written block by block to disk).
 */
export class StreamFetcher {
  private readonly pending = new Map<number, number>(); // block → deadline (ms)
  private readonly bad = new Map<number, number>(); // block → arrivals that failed their hash
  private stalls = 0;
  /** A GetStream of this fetch was accepted by the broker (PUBACK): later ones go at QoS 0. */
  private asked = false;

  constructor(
    private readonly options: DownloadOptions,
    private readonly fileId: number,
    private readonly size: number,
    private readonly blockSize: number,
  ) {}

  async fetch(
    missing: Set<number>,
    accept: (block: number, bytes: Uint8Array) => Promise<boolean>,
    onArrival: (bytes: number) => Promise<void>,
  ): Promise<void> {
    const { transport, thing, document, encoding } = this.options;
    const streamId = document.artifact.streamId;
    const dataTopic = streamTopics.data(thing, streamId, encoding);
    const rejectedTopic = streamTopics.rejected(thing, streamId, encoding);
    const token = randomBytes(8).toString('hex');
    const perRequest = maxBlocksPerRequest(this.blockSize);
    let failure: OutpostError | undefined;
    let internalErrors = 0;
    let wake: (() => void) | undefined;
    const nudge = () => {
      wake?.();
      wake = undefined;
    };
    let chain = Promise.resolve();
    const off = transport.onMessage(({ topic, payload }) => {
      if (topic === rejectedTopic) {
        const rejected = decodeStreamRejected(encoding, payload);
        if (rejected.c !== undefined && rejected.c !== token) return;
        // InternalError may pass (the service's own trouble); anything else is about our request or the stream.
        if (rejected.o === 'InternalError' && ++internalErrors < MAX_INTERNAL_ERRORS) return;
        failure = new OutpostError(
          'DOWNLOAD_FAILED',
          `stream ${streamId} rejected our request: ${rejected.o} ${rejected.m}`,
          {
            details: { code: rejected.o },
          },
        );
        nudge();
        return;
      }
      if (topic !== dataTopic) return;
      // Handled in arrival order, one at a time: writes and the arrivals log stay consistent.
      chain = chain
        .then(async () => {
          let data;
          try {
            data = decodeDataBlock(encoding, payload);
          } catch (error) {
            log.warn({ error: messageOf(error) }, 'malformed data message ignored');
            return;
          }
          if (data.f !== this.fileId || (data.c !== undefined && data.c !== token)) return;
          await onArrival(data.p.length);
          if (!missing.has(data.i)) return; // a duplicate: counted, not needed
          if (await accept(data.i, data.p)) {
            missing.delete(data.i);
            this.pending.delete(data.i);
            this.stalls = 0;
          } else {
            const failures = (this.bad.get(data.i) ?? 0) + 1;
            this.bad.set(data.i, failures);
            if (failures >= MAX_BAD_ARRIVALS) {
              throw new OutpostError(
                'DOWNLOAD_FAILED',
                `stream ${streamId}: block ${data.i} of file ${this.fileId} failed its hash ${failures} times`,
              );
            }
            log.warn({ block: data.i, failures }, 'block failed its hash: asking again');
            this.pending.delete(data.i);
          }
          nudge();
        })
        .catch((error: unknown) => {
          failure = downloadError(error, this.options.dir, false);
          nudge();
        });
    });
    const offConnection = transport.onConnectionChange(() => nudge());
    try {
      await transport.subscribe([dataTopic, rejectedTopic], 1);
      while (missing.size > 0) {
        if (failure !== undefined) throw failure;
        if (this.options.signal?.aborted === true) throw new OutpostError('DEPLOYMENT_INTERRUPTED', 'download stopped');
        const now = Date.now();
        // Blocks whose request timed out go back to the wanted set; a round with only timeouts is a stall.
        let expired = 0;
        for (const [block, deadline] of this.pending) {
          if (deadline <= now) {
            this.pending.delete(block);
            expired++;
          }
        }
        if (expired > 0 && transport.connected && ++this.stalls > this.options.maxStalls) {
          throw new OutpostError(
            'DOWNLOAD_FAILED',
            `stream ${streamId}: no block arrived in ${this.options.maxStalls} requests of ${this.options.requestTimeoutMs} ms; ` +
              `is the stream served, and may this device read ${dataTopic}? (a broker ACL that drops it looks like this)`,
            { retryable: true, details: { streamId, topic: dataTopic } },
          );
        }
        if (transport.connected) await this.request(missing, perRequest, token);
        await new Promise<void>((resolve) => {
          wake = resolve;
          setTimeout(resolve, Math.min(this.options.requestTimeoutMs, 250));
        });
      }
      await chain;
      if (failure !== undefined) throw failure;
    } finally {
      off();
      offConnection();
      await transport.unsubscribe([dataTopic, rejectedTopic]).catch(() => undefined);
    }
  }

  /** Asks for missing blocks not already in flight, up to the in-flight cap, a GetStream per `perRequest` blocks. */
  private async request(missing: Set<number>, perRequest: number, token: string): Promise<void> {
    const { transport, thing, document, encoding } = this.options;
    const room = this.options.maxInFlightBlocks - this.pending.size;
    if (room <= 0) return;
    const wanted: number[] = [];
    for (const block of missing) {
      if (this.pending.has(block)) continue;
      wanted.push(block);
      if (wanted.length >= room) break;
    }
    wanted.sort((a, b) => a - b);
    for (let i = 0; i < wanted.length; i += perRequest) {
      const batch = wanted.slice(i, i + perRequest);
      const { offset, bitmap } = bitmapForBlocks(batch);
      const request = {
        c: token,
        ...(document.artifact.streamVersion === undefined ? {} : { s: document.artifact.streamVersion }),
        f: this.fileId,
        l: this.blockSize,
        o: offset,
        n: batch.length,
        b: bitmap,
      };
      const deadline = Date.now() + this.options.requestTimeoutMs;
      for (const block of batch) this.pending.set(block, deadline);
      const topic = streamTopics.get(thing, document.artifact.streamId, encoding);
      try {
        // The first request of a fetch goes at QoS 1: its PUBACK says whether the broker lets us ask at all (MQTT 5
        // brokers answer 0x87 Not authorized); the rest at QoS 0, as the guide's GetStream examples.
        await transport.publish(topic, encodeStreamMessage(encoding, request), { qos: this.asked ? 0 : 1 });
        this.asked = true;
      } catch (error) {
        for (const block of batch) this.pending.delete(block);
        // A refusal will not change by asking again; anything else is the connection: asked again on reconnect.
        if (errorCategory(error) === 'fatal' && isOutpostError(error)) {
          throw new OutpostError(error.code, `GetStream on ${topic}: ${error.message}`, {
            cause: error,
            details: { ...error.details, topic },
          });
        }
        return;
      }
    }
  }
}

/** An error of the download as ours: a full disk is DISK_FULL (not a download problem), other IO DOWNLOAD_FAILED. */
export function downloadError(error: unknown, dir: string, retryable: boolean): OutpostError {
  if (error instanceof OutpostError) return error;
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'ENOSPC' || code === 'EDQUOT') {
    return fromFsError(error, (error as NodeJS.ErrnoException).path ?? dir, 'write');
  }
  return new OutpostError('DOWNLOAD_FAILED', messageOf(error), { cause: error, retryable });
}
