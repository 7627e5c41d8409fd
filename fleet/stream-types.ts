import type { MqttClient } from 'mqtt';
import type { OpenStreamFile, StreamFile } from './stream-files.js';

/** The streams server's types (streams-server.ts): what a stream is, its counters, the test hook. */
export interface StreamDefinition {
  readonly streamId: string;
  /** The stream version devices may send as GetStream `s`. */
  readonly version?: number; // default 1
  readonly description?: string;
  readonly files: readonly StreamFile[];
}

export interface BlockEvent {
  readonly streamId: string;
  readonly thing: string;
  readonly fileId: number;
  readonly block: number;
  /** 1 the first time this thing is sent this block, 2 the second … */
  readonly attempt: number;
}

/**
 * TEST HOOK, for fault-injection tests only: decides per block whether it is sent as read, sent with its first byte
 * flipped ('corrupt'), or not sent at all ('drop'). Production code never sets it.
 */
export type BlockFaultHook = (block: BlockEvent) => 'send' | 'corrupt' | 'drop';

export interface StreamsServerOptions {
  readonly client: MqttClient;
  /** QoS of data, description and rejected messages. */
  readonly qos?: 0 | 1; // default 1: PUBACKs pace the server
  /** Block payload one GetStream request yields at most. */
  readonly maxBytesPerRequest?: number; // bytes, default 131,072 (the service limit)
  readonly maxConcurrentRequests?: number; // default 8
  /** After each block is published: who got how many bytes of which file (deploy's download progress). */
  readonly onServed?: (event: { streamId: string; thing: string; fileId: number; bytes: number }) => void;
  /**
   * Streams found on demand (the fleet's artifact store) rather than added one by one: looked up on the first
   * request for an unknown stream id, opened, and kept open while used (at most `maxOpenStreams`, idle ones closed
   * first). `filters` are the subscriptions that bring their requests (start() subscribes them).
   */
  readonly source?: {
    readonly filters: readonly string[];
    resolve(streamId: string): Promise<StreamDefinition | undefined>;
  };
  readonly maxOpenStreams?: number; // default 64
  /** Whether to answer this thing's requests (a worker answers only the things it owns); default all. */
  readonly accept?: (thing: string) => boolean;
  readonly testHooks?: { readonly onBlock?: BlockFaultHook };
}

export interface StreamStats {
  describeRequests: number;
  getRequests: number;
  rejected: number;
  blocksServed: number;
  bytesServed: number;
  blocksCorrupted: number;
  blocksDropped: number;
}

export interface ServedStream {
  readonly streamId: string;
  /** Found through `source`: closed when idle and over the open-stream bound. */
  readonly resolved: boolean;
  lastUsed: number;
  inUse: number;
  readonly version: number;
  readonly description: string;
  readonly files: ReadonlyMap<number, OpenStreamFile>;
  readonly stats: StreamStats;
}

export function emptyStats(): StreamStats {
  return {
    describeRequests: 0,
    getRequests: 0,
    rejected: 0,
    blocksServed: 0,
    bytesServed: 0,
    blocksCorrupted: 0,
    blocksDropped: 0,
  };
}
