import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { create } from 'tar';
import { join } from 'node:path';
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  buildBlockIndexFromFile,
  createJobDocument,
  encodeBlockIndex,
  type JobStatus,
} from '../../device-agent/protocol/index.js';
import { JobsService } from '../../fleet/jobs-service.js';
import { closeBroker, connectBroker } from '../../fleet/mqtt.js';
import { StreamsServer } from '../../fleet/streams-server.js';
import { startBroker, type TestBroker } from '../helpers/broker.js';
import { startAgent, waitFor, type AgentProcess } from '../helpers/agent.js';
import { suiteTmpDir } from '../helpers/tmp.js';
import { rawTarGz } from '../helpers/fake-artifacts.js';
import { agentArgs, cnnArtifact, fleetTls, signingKeys, type Keys } from '../helpers/signed-artifacts.js';

const TERMINAL_MS = 30_000; // ms for an execution to reach a terminal status
const THING = 'jobs-dev';

let dir: string;
let dispose: () => Promise<void>;
let broker: TestBroker;
let agent: AgentProcess;
let client: MqttClient;
let jobs: JobsService;
let streams: StreamsServer;
let count = 0;
let trusted: Keys;

beforeAll(async () => {
  ({ dir, dispose } = await suiteTmpDir());
  broker = await startBroker();
  trusted = await signingKeys(dir, 'trusted');
  const keys = trusted;
  const config = join(dir, 'agent.json');
  await writeFile(config, JSON.stringify({ thing: THING, models: ['cnn', 'evil'] }));
  agent = startAgent(await agentArgs(broker, THING, keys.publicKeyPath, config), join(dir, 'data'));
  await agent.http();
  client = await connectBroker({ url: broker.urls.mtls, tls: await fleetTls(broker) });
  jobs = new JobsService({ client });
  await jobs.start();
  streams = new StreamsServer({ client });
}, 60_000);

afterAll(async () => {
  await agent.stop();
  await jobs.close();
  await streams.close();
  await closeBroker(client);
  await broker.stop();
  await dispose();
});

async function run(document: Record<string, unknown>): Promise<{ status: JobStatus; details: Record<string, string> }> {
  const jobId = `job-${++count}`;
  await jobs.createJob({ jobId, document, things: [THING] });
  return waitFor(() => {
    const [execution] = jobs.executions(jobId);
    return execution !== undefined &&
      ['SUCCEEDED', 'FAILED', 'REJECTED', 'TIMED_OUT', 'CANCELED'].includes(execution.status)
      ? { status: execution.status, details: { ...execution.statusDetails } }
      : undefined;
  }, TERMINAL_MS);
}

/** Serves `archive` (any bytes, well-formed or not) as a stream with a correct index; returns a valid job document. */
async function serve(archive: Buffer, model = 'evil', version = '1.0.0') {
  const base = join(dir, `stream-${++count}`);
  await mkdir(base, { recursive: true });
  const archivePath = join(base, 'artifact.tar.gz');
  await writeFile(archivePath, archive);
  const index = await buildBlockIndexFromFile(archivePath, 64 * 1024);
  const indexPath = join(base, 'index.json');
  const indexBytes = encodeBlockIndex(index);
  await writeFile(indexPath, indexBytes);
  const streamId = `stream-${count}`;
  await streams.addStream({
    streamId,
    files: [
      { fileId: 0, path: indexPath },
      { fileId: 1, path: archivePath },
    ],
  });
  return createJobDocument({
    model: { name: model, version },
    artifact: {
      streamId,
      fileId: 1,
      indexFileId: 0,
      size: archive.length,
      sha256: index.sha256,
      indexSize: indexBytes.length,
      indexSha256: createHash('sha256').update(indexBytes).digest('hex'),
      blockSize: 64 * 1024,
    },
  });
}

describe('jobs the agent refuses up front (REJECTED)', () => {
  it('a malformed job document', async () => {
    const outcome = await run({ operation: 'outpost.deploy', schemaVersion: 1, model: { name: 'cnn' } });
    expect(outcome.status).toBe('REJECTED');
    expect(outcome.details.reasonCode).toBe('JOB_DOCUMENT_INVALID');
  });

  it('an oversized job document never leaves the fleet (IoT Jobs caps documents at 32 KB too)', async () => {
    const document = { ...(await serve(Buffer.from('x'))), notes: 'n'.repeat(40 * 1024) };
    await expect(jobs.createJob({ jobId: 'too-big', document, things: [THING] })).rejects.toThrow(/32768/);
  });

  it('a model this device does not run', async () => {
    const outcome = await run(await serve(Buffer.from('x'), 'someone-elses'));
    expect(outcome.status).toBe('REJECTED');
    expect(outcome.details.reasonCode).toBe('MODEL_NOT_ALLOWED');
  });

  it('an artifact built for another architecture', async () => {
    const outcome = await run({ ...(await serve(Buffer.from('x'), 'cnn')), target: { arch: 'arm64' } });
    expect(outcome.status).toBe('REJECTED');
    expect(outcome.details.reasonCode).toBe('ARTIFACT_TARGET_MISMATCH');
  });
});

describe('jobs that fail on arrival (FAILED), with nothing written outside the store', () => {
  it('an archive whose entry escapes its directory', async () => {
    const archive = rawTarGz([{ path: '../../outside.txt', body: Buffer.from('pwned') }]);
    const outcome = await run(await serve(archive));
    expect(outcome.status).toBe('FAILED');
    expect(outcome.details.reasonCode).toBe('ARTIFACT_PATH_ESCAPE');
    await expect(readFile(join(dir, 'data', 'outside.txt'))).rejects.toThrow(/ENOENT/);
  });

  it('a signed artifact with a bit flipped inside (repacked, so the stream itself is consistent)', async () => {
    const source = await cnnArtifact(join(dir, 'flip'), '1.0.0', trusted);
    const variant = (await readdir(join(source, 'variants')))[0] ?? '';
    const bytes = await readFile(join(source, 'variants', variant));
    const at = bytes.length >> 1;
    bytes.writeUInt8(bytes.readUInt8(at) ^ 0x01, at);
    await writeFile(join(source, 'variants', variant), bytes);
    const tgz = join(dir, 'flipped.tar.gz');
    await create({ gzip: true, cwd: source, file: tgz, portable: true }, await readdir(source));
    const outcome = await run({ ...(await serve(await readFile(tgz), 'cnn')) });
    expect(outcome.status).toBe('FAILED');
    // The stream's block hashes match what was sent; the artifact's own hashes catch the flip.
    expect(outcome.details.reasonCode).toBe('ARTIFACT_HASH_MISMATCH');
  });

  it('a truncated stream (the index promises more than the file holds)', async () => {
    const document = await serve(Buffer.alloc(200_000, 7));
    const truncated = join(dir, `stream-${count}`, 'artifact.tar.gz');
    await writeFile(truncated, Buffer.alloc(100_000, 7));
    const outcome = await run(document);
    expect(outcome.status).toBe('FAILED');
    expect(outcome.details.reasonCode).toBe('DOWNLOAD_FAILED');
  });

  it('bytes that are not an archive at all', async () => {
    const outcome = await run(await serve(Buffer.from('definitely not gzip'.repeat(100))));
    expect(outcome.status).toBe('FAILED');
    expect(outcome.details.reasonCode).toBe('ARTIFACT_ARCHIVE_INVALID');
  });
});
