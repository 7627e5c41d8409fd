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
import { BlockWindow } from './block-window.js';
import { Wake } from './wake.js';

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
 * memory) and, through `downloadArtifact`, for the archive (written block by block to disk). One instance a fetch.
 *
 * The loop sleeps until something happens: a block arrives (handled one at a time, in arrival order), the stream
 * rejects a request, the connection changes, the first request times out, or `signal` aborts. The block
 * bookkeeping is `BlockWindow`'s; this class only moves messages and waits.
 */
export class StreamFetcher {
  private readonly wake = new Wake();
  /** The first reason the fetch cannot go on (a rejection, a broken block, a failed write). */
  private failure: OutpostError | undefined;
  /** Data messages, handled in arrival order one at a time: writes and the arrivals log stay consistent. */
  private arrivals = Promise.resolve();
  private internalErrors = 0;
  /** A GetStream of this fetch was accepted by the broker (PUBACK): later ones go at QoS 0. */
  private asked = false;
  private readonly token = randomBytes(8).toString('hex');

  constructor(
    private readonly options: DownloadOptions,
    private readonly fileId: number,
    private readonly size: number,
    private readonly blockSize: number,
  ) {}

  async fetch(
    missing: Iterable<number>,
    accept: (block: number, bytes: Uint8Array) => Promise<boolean>,
    onArrival: (bytes: number) => Promise<void>,
  ): Promise<void> {
    const { transport, thing, document, encoding, signal } = this.options;
    const streamId = document.artifact.streamId;
    const dataTopic = streamTopics.data(thing, streamId, encoding);
    const rejectedTopic = streamTopics.rejected(thing, streamId, encoding);
    const window = new BlockWindow(missing, {
      maxInFlight: this.options.maxInFlightBlocks,
      perRequest: maxBlocksPerRequest(this.blockSize),
      requestTimeoutMs: this.options.requestTimeoutMs,
      maxStalls: this.options.maxStalls,
      maxBadArrivals: MAX_BAD_ARRIVALS,
    });
    const off = transport.onMessage(({ topic, payload }) => {
      if (topic === rejectedTopic) this.onRejected(payload);
      else if (topic === dataTopic) {
        this.arrivals = this.arrivals
          .then(() => this.onData(window, payload, accept, onArrival))
          .catch((error: unknown) => this.fail(downloadError(error, this.options.dir, false)));
      }
    });
    const offConnection = transport.onConnectionChange(() => this.wake.notify());
    try {
      await transport.subscribe([dataTopic, rejectedTopic], 1);
      while (!window.done) {
        if (this.failure !== undefined) throw this.failure;
        if (signal?.aborted === true) throw new OutpostError('DEPLOYMENT_INTERRUPTED', 'download stopped');
        // Blocks whose request timed out go back to the wanted set; a timeout with no block since is a stall.
        if (window.expire(Date.now(), transport.connected)) {
          throw new OutpostError(
            'DOWNLOAD_FAILED',
            `stream ${streamId}: no block arrived in ${this.options.maxStalls} requests of ${this.options.requestTimeoutMs} ms; ` +
              `is the stream served, and may this device read ${dataTopic}? (a broker ACL that drops it looks like this)`,
            { retryable: true, details: { streamId, topic: dataTopic } },
          );
        }
        if (transport.connected) await this.request(window);
        const deadline = window.nextDeadline();
        await this.wake.wait(deadline === undefined ? undefined : Math.max(0, deadline - Date.now()), signal);
      }
      await this.arrivals;
      if (this.failure !== undefined) throw this.failure;
    } finally {
      off();
      offConnection();
      await transport.unsubscribe([dataTopic, rejectedTopic]).catch(() => undefined);
    }
  }

  private fail(error: OutpostError): void {
    this.failure ??= error;
    this.wake.notify();
  }

  private onRejected(payload: Buffer): void {
    const rejected = decodeStreamRejected(this.options.encoding, payload);
    if (rejected.c !== undefined && rejected.c !== this.token) return;
    // InternalError may pass (the service's own trouble); anything else is about our request or the stream.
    if (rejected.o === 'InternalError' && ++this.internalErrors < MAX_INTERNAL_ERRORS) return;
    const streamId = this.options.document.artifact.streamId;
    this.fail(
      new OutpostError('DOWNLOAD_FAILED', `stream ${streamId} rejected our request: ${rejected.o} ${rejected.m}`, {
        details: { code: rejected.o },
      }),
    );
  }

  private async onData(
    window: BlockWindow,
    payload: Buffer,
    accept: (block: number, bytes: Uint8Array) => Promise<boolean>,
    onArrival: (bytes: number) => Promise<void>,
  ): Promise<void> {
    let data;
    try {
      data = decodeDataBlock(this.options.encoding, payload);
    } catch (error) {
      log.warn({ error: messageOf(error) }, 'malformed data message ignored');
      return;
    }
    if (data.f !== this.fileId || (data.c !== undefined && data.c !== this.token)) return;
    await onArrival(data.p.length);
    if (!window.wants(data.i)) return; // a duplicate: counted, not needed
    if (await accept(data.i, data.p)) window.accepted(data.i);
    else if (window.rejected(data.i) === 'give-up') {
      throw new OutpostError(
        'DOWNLOAD_FAILED',
        `stream ${this.options.document.artifact.streamId}: block ${data.i} of file ${this.fileId} failed its hash ` +
          `${window.badArrivals(data.i)} times`,
      );
    } else log.warn({ block: data.i, failures: window.badArrivals(data.i) }, 'block failed its hash: asking again');
    this.wake.notify();
  }

  /** Asks for the window's next blocks, a GetStream per batch. */
  private async request(window: BlockWindow): Promise<void> {
    const { transport, thing, document, encoding } = this.options;
    const topic = streamTopics.get(thing, document.artifact.streamId, encoding);
    const batches = window.nextRequests(Date.now());
    for (const [i, batch] of batches.entries()) {
      const { offset, bitmap } = bitmapForBlocks(batch);
      const request = {
        c: this.token,
        ...(document.artifact.streamVersion === undefined ? {} : { s: document.artifact.streamVersion }),
        f: this.fileId,
        l: this.blockSize,
        o: offset,
        n: batch.length,
        b: bitmap,
      };
      try {
        // The first request of a fetch goes at QoS 1: its PUBACK says whether the broker lets us ask at all (MQTT 5
        // brokers answer 0x87 Not authorized); the rest at QoS 0, as the guide's GetStream examples.
        await transport.publish(topic, encodeStreamMessage(encoding, request), { qos: this.asked ? 0 : 1 });
        this.asked = true;
      } catch (error) {
        // This batch and the ones after it were not asked for.
        for (const unsent of batches.slice(i)) window.unsent(unsent, Date.now());
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
