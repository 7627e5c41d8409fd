import { readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { basename, join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DeploymentView } from '../../../fleet/index.js';
import type { Manifest } from '../../../runtime/artifact/index.js';
import { startAgent, waitFor, type AgentProcess } from '../../helpers/agent.js';
import { startBroker, type TestBroker } from '../../helpers/broker.js';
import { runCli } from '../../helpers/cli.js';
import { startFleet, type FleetProcess } from '../../helpers/fleet.js';
import { mlpPipeline } from '../../helpers/pipeline-artifacts.js';
import { suiteTmpDir } from '../../helpers/tmp.js';
import { agentArgs, mlpArtifact, signingKeys, type Keys } from '../../helpers/signed-artifacts.js';

/*
 * `fleet serve` ships the files stream layout (docs/job-document.md, "Stream layouts"): real `fleet serve` (SQLite),
 * real Mosquitto (the harness's, mTLS for the agents), real agent processes, a real two-variant artifact of the
 * 2 MiB MLP (int8 rank 1, fp32 rank 2: mlpArtifact), and a pipeline bundling a smaller one twice (mlpPipeline). The
 * store's side (migration 7, both engines) is test/fleet/store/.
 */
const SETTLE_MS = 90_000; // ms for a real agent to download, self-test and switch (or fail)
const TOKEN = 'files-layout-token';

let broker: TestBroker;
let tmp: { dir: string; dispose: () => Promise<void> };
let keys: Keys;
let artifact: string;
let manifest: Manifest;
let tokenFile: string;
let dataDir: string;
let fleet: FleetProcess;
const agents: AgentProcess[] = [];

beforeAll(async () => {
  broker = await startBroker();
  tmp = await suiteTmpDir('outpost-fleet-files-');
  keys = await signingKeys(tmp.dir, 'fleet');
  artifact = await mlpArtifact(join(tmp.dir, 'mlp'), '1.0.0', keys);
  manifest = JSON.parse(await readFile(join(artifact, 'manifest.json'), 'utf8')) as Manifest;
  tokenFile = join(tmp.dir, 'token');
  await writeFile(tokenFile, `${TOKEN}\n`);
  dataDir = join(tmp.dir, 'fleet');
  fleet = await startFleet(
    [
      '--broker',
      broker.urls.tcp,
      '--db',
      `sqlite:${join(tmp.dir, 'fleet.db')}`,
      '--data-dir',
      dataDir,
      '--token-file',
      tokenFile,
      '--trust-key',
      keys.publicKeyPath,
    ],
    { token: TOKEN },
  );
}, 120_000);

afterAll(async () => {
  for (const agent of agents) await agent.stop();
  await fleet.stop();
  await broker.stop();
  await tmp.dispose();
});

const cli = (...rest: string[]) =>
  runCli(['fleet', ...rest, '--fleet', fleet.url, '--token-file', tokenFile, '--json']);

/** A real agent, known to the registry with its target. */
async function device(thing: string): Promise<{ agent: AgentProcess; state: string }> {
  const state = join(tmp.dir, thing);
  const agent = startAgent(await agentArgs(broker, thing, keys.publicKeyPath), state);
  agents.push(agent);
  await agent.http();
  await waitFor(async () => ((await fleet.thing(thing))?.target.profile === undefined ? undefined : true), 20_000);
  return { agent, state };
}

async function deployAndWait(thing: string, ...options: string[]): Promise<DeploymentView['executions'][number]> {
  return deployAndWaitFor(artifact, thing, ...options);
}

async function deployAndWaitFor(
  what: string,
  thing: string,
  ...options: string[]
): Promise<DeploymentView['executions'][number]> {
  const deployed = await cli('deploy', what, '--thing', thing, ...options);
  expect(deployed.code, deployed.stderr).toBe(0);
  const { id } = JSON.parse(deployed.stdout) as DeploymentView;
  const done = await waitFor(
    async () => {
      const d = await fleet.deployment(id);
      return d.state === 'ACTIVE' ? undefined : d;
    },
    SETTLE_MS,
    () => `deployment ${id} to end:\n${fleet.logs().slice(-3000)}`,
  );
  const [execution] = done.executions;
  if (execution === undefined) throw new Error(`deployment ${id} has no execution`);
  return execution;
}

const fileOf = (id: string): string => manifest.variants.find((v) => v.id === id)?.file ?? '';
const bytesOf = (id: string): number => manifest.files[fileOf(id)]?.bytes ?? 0;

/** The version the agent's endpoint answers an inference with (Open Inference Protocol, KServe v2). */
async function servedVersion(agent: AgentProcess): Promise<string | undefined> {
  const response = await fetch(`${await agent.http()}/v2/models/mlp/infer`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 512], data: Array.from({ length: 512 }, () => 0.5) }],
    }),
  });
  expect(response.status).toBe(200);
  return ((await response.json()) as { model_version?: string }).model_version;
}

describe('fleet serve: the files layout', () => {
  it(
    'a device fetches only the rank-1 variant (bytesFetched ≤ that variant + 5 %), reported per device by deploy --wait --json',
    { timeout: 180_000 },
    async () => {
      expect(manifest.variants.map((v) => [v.id, v.rank])).toEqual([
        ['int8', 1],
        ['fp32', 2],
      ]);
      const { agent, state } = await device('files-1');
      const deployed = await cli('deploy', artifact, '--thing', 'files-1', '--wait');
      expect(deployed.code, deployed.stderr).toBe(0);
      const view = JSON.parse(deployed.stdout) as DeploymentView;
      const [execution] = view.executions;
      expect(execution).toMatchObject({ status: 'SUCCEEDED', statusDetails: { variant: 'int8' } });
      expect(execution?.bytesFetched).toBe(Number(execution?.statusDetails.bytesFetched));
      expect(execution?.bytesFetched).toBeGreaterThan(bytesOf('int8'));
      expect(execution?.bytesFetched).toBeLessThanOrEqual(bytesOf('int8') * 1.05);
      // The fp32 file never reached the device; it serves int8.
      expect(await readdir(join(state, 'store', 'mlp', '1.0.0', 'variants'))).toEqual([basename(fileOf('int8'))]);
      expect(await servedVersion(agent)).toBe('1.0.0');
      // Each artifact file is its own blob, and the artifact record names both streams.
      const stored = await fleet.api('GET', '/v1/artifacts');
      const [record] = (stored.body as { artifacts: { streamId: string; delivery: { streamId: string } }[] }).artifacts;
      expect(record?.delivery.streamId).toBe(`${record?.streamId}-files`);
    },
  );

  it(
    'a tampered per-file blob is refused by the device (nothing installed); --layout archive still ships the archive',
    { timeout: 240_000 },
    async () => {
      const { agent, state } = await device('files-2');
      const int8 = manifest.files[fileOf('int8')];
      if (int8 === undefined) throw new Error('no int8 file');
      const blob = join(dataDir, 'blobs', 'sha256', int8.sha256.slice(0, 2), int8.sha256);
      expect((await stat(blob)).size).toBe(int8.bytes);
      await writeFile(blob, Buffer.alloc(int8.bytes, 0x5a)); // same size, other bytes: only the hashes can tell
      const refused = await deployAndWait('files-2');
      expect(refused).toMatchObject({ status: 'FAILED', statusDetails: { reasonCode: 'DOWNLOAD_FAILED' } });
      expect(refused.statusDetails.reason).toContain('failed its hash');
      await expect(stat(join(state, 'store', 'mlp', '1.0.0'))).rejects.toThrow();

      // The archive layout does not read the per-file blobs: the same artifact installs whole from its .tar.gz.
      const archived = await deployAndWait('files-2', '--layout', 'archive');
      // With every variant on disk the agent may pick by its own timing (fp32 wins on an idle machine): either ships.
      expect(archived.status).toBe('SUCCEEDED');
      expect(['int8', 'fp32']).toContain(archived.statusDetails.variant);
      expect(archived.bytesFetched).toBeGreaterThan(bytesOf('int8') + bytesOf('fp32') * 0.5);
      expect(await servedVersion(agent)).toBe('1.0.0');
    },
  );

  it(
    'a pipeline fetches its own files and one variant of each bundled model; it serves; a tampered fetched file fails',
    { timeout: 240_000 },
    async () => {
      const model = await mlpArtifact(join(tmp.dir, 'pipe-mlp'), '1.0.0', keys, { inWidth: 256, hidden: 1024 });
      const pipe = await mlpPipeline(tmp.dir, '1.0.0', keys, model);
      const piped = JSON.parse(await readFile(join(pipe, 'manifest.json'), 'utf8')) as Manifest;
      const inner = JSON.parse(await readFile(join(pipe, 'models', 'a', 'manifest.json'), 'utf8')) as Manifest;
      const file = (key: string, id: string) => `models/${key}/${inner.variants.find((v) => v.id === id)?.file ?? ''}`;
      const notFetched = [file('a', 'fp32'), file('b', 'fp32')];
      const expected = Object.keys(piped.files)
        .filter((p) => !notFetched.includes(p))
        .sort();
      expect(expected).toContain('labels.txt');
      const total = expected.reduce((sum, p) => sum + (piped.files[p]?.bytes ?? 0), 0);
      const fp32 = piped.files[file('a', 'fp32')]?.bytes ?? 0;

      const { agent, state } = await device('files-pipe-1');
      const done = await deployAndWaitFor(pipe, 'files-pipe-1');
      expect(done.status, JSON.stringify(done.statusDetails)).toBe('SUCCEEDED');
      // Index + the pipeline's own files + each bundled model's int8 (and its shared files); no fp32 byte.
      expect(done.bytesFetched).toBeGreaterThan(total);
      expect(done.bytesFetched).toBeLessThanOrEqual(total * 1.05 + 16 * 1024);
      expect(done.bytesFetched).toBeLessThan(total + fp32);
      const installed = join(state, 'store', 'mlp-pipe', '1.0.0');
      const held = (await readdir(installed, { recursive: true, withFileTypes: true }))
        .filter((e) => e.isFile())
        .map((e) => relative(installed, join(e.parentPath, e.name)))
        .filter((p) => p !== 'manifest.json' && p !== 'manifest.sig')
        .sort();
      expect(held).toEqual(expected);
      const absent = JSON.parse(await readFile(join(state, 'store', 'mlp-pipe', '1.0.0.absent.json'), 'utf8')) as {
        variants: string[];
      };
      expect(absent.variants).toEqual(['a/fp32', 'b/fp32']);
      // Its test vectors passed at the self-test (SUCCEEDED); it serves, each model from its int8 file.
      const width = Number(inner.inputs[0]?.shape[1]);
      const reply = await fetch(`${await agent.http()}/v2/models/mlp-pipe/infer`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          inputs: [{ name: 'x', datatype: 'FP32', shape: [1, width], data: Array.from({ length: width }, () => 0.5) }],
        }),
      });
      expect(reply.status).toBe(200);
      const outputs = ((await reply.json()) as { outputs: { name: string }[] }).outputs.map((o) => o.name).sort();
      expect(outputs).toEqual(['ya', 'yb']);

      // The same pipeline to another device after its fetched int8 blob changed: refused, nothing installed.
      const int8 = piped.files[file('a', 'int8')];
      if (int8 === undefined) throw new Error('no int8 file');
      const blob = join(dataDir, 'blobs', 'sha256', int8.sha256.slice(0, 2), int8.sha256);
      await writeFile(blob, Buffer.alloc(int8.bytes, 0x5a));
      const second = await device('files-pipe-2');
      const refused = await deployAndWaitFor(pipe, 'files-pipe-2');
      expect(refused).toMatchObject({ status: 'FAILED', statusDetails: { reasonCode: 'DOWNLOAD_FAILED' } });
      await expect(stat(join(second.state, 'store', 'mlp-pipe', '1.0.0'))).rejects.toThrow();
    },
  );
});
