/**
 * A real process running the agent's downloader (device-agent/download.ts) once, for the SIGKILL test in
 * download-batches.test.ts: argv[2] is JSON { url, thing, dir, document, maxInFlightBlocks }; every progress report
 * goes to the parent over IPC, so the parent can kill this process at a moment it knows about.
 */
import type { JobDocument } from '../../../device-agent/protocol/index.js';
import { downloadArtifact } from '../../../device-agent/download.js';
import { createTransport } from '../../../device-agent/transport/index.js';

interface Settings {
  readonly url: string;
  readonly thing: string;
  readonly dir: string;
  readonly document: JobDocument;
  readonly maxInFlightBlocks: number;
}

const settings = JSON.parse(process.argv[2] ?? '{}') as Settings;
const transport = createTransport('mqtt', { url: settings.url, clientId: settings.thing, persistentSession: false });
await transport.connect();
await downloadArtifact({
  transport,
  thing: settings.thing,
  document: settings.document,
  dir: settings.dir,
  encoding: 'cbor',
  maxInFlightBlocks: settings.maxInFlightBlocks,
  requestTimeoutMs: 5000,
  maxStalls: 12,
  onProgress: (progress) => process.send?.(progress),
});
process.send?.('done');
await transport.close();
