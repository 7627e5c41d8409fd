import { createHash } from 'node:crypto';
import {
  type BlockIndex,
  type JobDocument,
  type JobExecution,
  type StreamEncoding,
  bitmapForBlocks,
  blockCount,
  decodeDataBlock,
  encodeStreamMessage,
  jobsTopics,
  maxBlocksPerRequest,
  parseBlockIndex,
  parseJobDocument,
  startNextAcceptedSchema,
  streamTopics,
  updateAcceptedSchema,
  verifyBlock,
} from '../../device-agent/protocol/index.js';
import { connectPeer, type Peer, until } from '../helpers/mqtt.js';

/**
 * A tiny device for fleet tests, written against the protocol module only (no agent code): it takes the next job
 * (start-next), fetches the block index and then the archive by GetStream with bitmaps, checks every block against the
 * index and asks again for the bad or missing ones, checks the archive's sha256 and reports SUCCEEDED — or, when told
 * to, FAILED with statusDetails. It is the scripted stand-in for device-agent/ that the issue asks for.
 */
export const DEVICE_REPLY_TIMEOUT_MS = 5_000; // milliseconds for one Jobs reply
export const DEVICE_JOB_WAIT_MS = 20_000; // milliseconds for a job to appear
export const DEVICE_START_NEXT_WAIT_MS = 500; // milliseconds for start-next to be answered before waiting for notify-next
export const DEVICE_BLOCK_WAIT_MS = 1_500; // milliseconds for the blocks of one GetStream request
export const DEVICE_MAX_ROUNDS = 20; // GetStream rounds per file before giving up

export interface ScriptedDeviceOptions {
  readonly url: string;
  readonly thing: string;
  readonly encoding?: StreamEncoding; // default json
  /** 'fail' reports FAILED with statusDetails { reason, code } after downloading. */
  readonly outcome?: 'succeed' | 'fail';
}

export interface DeviceRun {
  readonly status: 'SUCCEEDED' | 'FAILED';
  readonly document: JobDocument;
  readonly archive: Buffer;
  /** GetStream requests sent for the archive. */
  readonly requests: number;
  /** Blocks that arrived but failed their index hash. */
  readonly badBlocks: number;
}

export async function runScriptedDevice(options: ScriptedDeviceOptions): Promise<DeviceRun> {
  const device = await ScriptedDevice.connect(options);
  try {
    return await device.run(options.outcome ?? 'succeed');
  } finally {
    await device.close();
  }
}

class ScriptedDevice {
  private requests = 0;
  private badBlocks = 0;
  private token = 0;

  private constructor(
    private readonly peer: Peer,
    private readonly thing: string,
    private readonly encoding: StreamEncoding,
  ) {}

  static async connect(options: ScriptedDeviceOptions): Promise<ScriptedDevice> {
    const peer = await connectPeer(options.url, { mqtt5: false, clientId: options.thing });
    await peer.subscribe(`$aws/things/${options.thing}/jobs/#`);
    await peer.subscribe(`$aws/things/${options.thing}/streams/#`);
    return new ScriptedDevice(peer, options.thing, options.encoding ?? 'json');
  }

  async run(outcome: 'succeed' | 'fail'): Promise<DeviceRun> {
    const execution = await this.startNext();
    const document = parseJobDocument(execution.jobDocument);
    let version = execution.versionNumber;
    version = await this.update(document, 'IN_PROGRESS', { step: 'downloading' }, version);
    const { artifact } = document;
    const indexBytes = await this.fetch(document, artifact.indexFileId, artifact.indexSize);
    if (sha256(indexBytes) !== artifact.indexSha256) throw new Error('index sha256 mismatch');
    const index = parseBlockIndex(indexBytes);
    const archive = await this.fetch(document, artifact.fileId ?? 1, artifact.size, index);
    if (sha256(archive) !== artifact.sha256) throw new Error('archive sha256 mismatch');
    const status = outcome === 'succeed' ? 'SUCCEEDED' : 'FAILED';
    const details: Record<string, string> =
      outcome === 'succeed'
        ? { step: 'done' }
        : { step: 'self-testing', code: 'SELF_TEST_FAILED', reason: 'outputs differ' };
    await this.update(document, status, details, version);
    return { status, document, archive, requests: this.requests, badBlocks: this.badBlocks };
  }

  close(): Promise<void> {
    return this.peer.close();
  }

  /**
   * start-next until an execution comes back. Nothing may answer yet (the fleet is still packing) or nothing may be
   * pending yet: then wait for notify-next and ask again.
   */
  private async startNext(): Promise<JobExecution> {
    const accepted = jobsTopics.startNextAccepted(this.thing);
    const notifyNext = jobsTopics.notifyNext(this.thing);
    const deadline = Date.now() + DEVICE_JOB_WAIT_MS;
    while (Date.now() < deadline) {
      const seen = this.peer.inbox.on(accepted).length;
      const notified = this.peer.inbox.on(notifyNext).length;
      await this.peer.publish(jobsTopics.startNext(this.thing), JSON.stringify({ clientToken: this.nextToken() }));
      const answered = await this.peer.inbox.wait(accepted, seen + 1, DEVICE_START_NEXT_WAIT_MS).then(
        (replies) => replies[seen],
        () => undefined,
      );
      if (answered !== undefined) {
        const reply = startNextAcceptedSchema.parse(JSON.parse(String(answered)));
        if (reply.execution !== undefined) return reply.execution;
      }
      await until(
        () => this.peer.inbox.on(notifyNext).length > notified,
        Math.max(0, deadline - Date.now()),
        'notify-next',
      );
    }
    throw new Error(`${this.thing}: no job within ${DEVICE_JOB_WAIT_MS} ms`);
  }

  private async update(
    document: JobDocument,
    status: 'IN_PROGRESS' | 'SUCCEEDED' | 'FAILED',
    statusDetails: Record<string, string>,
    expectedVersion: number,
  ): Promise<number> {
    const jobId = document.artifact.streamId;
    const accepted = jobsTopics.updateAccepted(this.thing, jobId);
    const seen = this.peer.inbox.on(accepted).length;
    const body = {
      status,
      statusDetails,
      expectedVersion,
      includeJobExecutionState: true,
      clientToken: this.nextToken(),
    };
    await this.peer.publish(jobsTopics.update(this.thing, jobId), JSON.stringify(body));
    await this.peer.inbox.wait(accepted, seen + 1, DEVICE_REPLY_TIMEOUT_MS);
    const reply = updateAcceptedSchema.parse(JSON.parse(String(this.peer.inbox.on(accepted)[seen])));
    return reply.executionState?.versionNumber ?? expectedVersion + 1;
  }

  /** Every block of one stream file, by bitmap requests for what is still missing; verified against `index` if given. */
  private async fetch(document: JobDocument, fileId: number, size: number, index?: BlockIndex): Promise<Buffer> {
    const { streamId, blockSize, streamVersion } = document.artifact;
    const total = blockCount(size, blockSize);
    const blocks = new Map<number, Uint8Array>();
    const data = streamTopics.data(this.thing, streamId, this.encoding);
    for (let round = 0; round < DEVICE_MAX_ROUNDS && blocks.size < total; round++) {
      const missing = [...Array(total).keys()].filter((b) => !blocks.has(b)).slice(0, maxBlocksPerRequest(blockSize));
      const { offset, bitmap } = bitmapForBlocks(missing);
      const seen = this.peer.inbox.on(data).length;
      const request = {
        c: this.nextToken(),
        s: streamVersion,
        f: fileId,
        l: blockSize,
        o: offset,
        n: missing.length,
        b: bitmap,
      };
      this.requests++;
      await this.peer.publish(
        streamTopics.get(this.thing, streamId, this.encoding),
        Buffer.from(encodeStreamMessage(this.encoding, request)),
      );
      await until(() => this.peer.inbox.on(data).length >= seen + missing.length, DEVICE_BLOCK_WAIT_MS, 'blocks').catch(
        () => undefined, // a dropped block: the next round asks for it again
      );
      for (const payload of this.peer.inbox.on(data).slice(seen)) {
        const block = decodeDataBlock(this.encoding, payload);
        if (block.f !== fileId) continue;
        if (index !== undefined && !verifyBlock(index, block.i, block.p)) {
          this.badBlocks++;
          continue;
        }
        blocks.set(block.i, block.p);
      }
    }
    if (blocks.size < total)
      throw new Error(`${this.thing}: file ${fileId} incomplete after ${DEVICE_MAX_ROUNDS} rounds`);
    return Buffer.concat([...Array(total).keys()].map((b) => blocks.get(b) ?? new Uint8Array(0)));
  }

  private nextToken(): string {
    return `${this.thing}-${++this.token}`;
  }
}

function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}
