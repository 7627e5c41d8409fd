import { createHash } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { saveModel } from '../../compiler/onnx/index.js';
import { deploy } from '../../fleet/deploy.js';
import { buildMlp } from '../../models/samples.js';
import { generateSigningKeys } from '../../runtime/artifact/index.js';
import { startAgent, type AgentProcess } from '../helpers/agent.js';
import { sampleCnnArtifact } from '../helpers/artifacts.js';
import { FLEET_IDENTITY, freePort, startBroker, type TestBroker } from '../helpers/broker.js';
import { runCli } from '../helpers/cli.js';
import { suiteTmpDir } from '../helpers/tmp.js';

/**
 * `outpost deploy model.onnx`: a plain model works where an artifact does (README, "Artifacts and models"): it is
 * wrapped into a one-variant artifact (signed with --sign-key), shipped, installed and served by a real agent.
 */
const THING = 'bare-1';
const DEPLOY_TIMEOUT_S = 60; // s

let dir: string;
let dispose: () => Promise<void>;
let broker: TestBroker;
let agent: AgentProcess;
let http: string;
let model: string;
let key: string;

beforeAll(async () => {
  ({ dir, dispose } = await suiteTmpDir());
  broker = await startBroker();
  const keys = generateSigningKeys();
  key = join(dir, 'release.key');
  await writeFile(key, keys.privateKeyPem, { mode: 0o600 });
  await writeFile(join(dir, 'release.pub'), keys.publicKeyPem);
  model = join(dir, 'mlp.onnx');
  await saveModel(buildMlp().proto, model);
  const id = await broker.identity(THING);
  const args = ['--thing', THING, '--broker', broker.urls.mtls, '--ca', broker.ca.caPath, '--cert', id.certPath];
  agent = startAgent(
    [...args, '--key', id.keyPath, '--trust-key', join(dir, 'release.pub'), '--http-port', '0'],
    join(dir, 'data'),
  );
  http = await agent.http();
}, 60_000);

afterAll(async () => {
  await agent.stop();
  await broker.stop();
  await dispose();
});

async function deployCli(...extra: string[]) {
  const fleet = await broker.identity(FLEET_IDENTITY);
  const tls = ['--ca', broker.ca.caPath, '--cert', fleet.certPath, '--key', fleet.keyPath];
  return runCli([
    'deploy',
    ...extra,
    '--thing',
    THING,
    '--broker',
    broker.urls.mtls,
    ...tls,
    '--wait',
    '--timeout',
    String(DEPLOY_TIMEOUT_S),
    '--json',
  ]);
}

interface DeployJson {
  status: string;
  things: { statusDetails: Record<string, string> }[];
}

describe('outpost deploy <model.onnx>', () => {
  it('wraps the model into a signed artifact that a real agent installs and serves', async () => {
    const cli = await deployCli(model, '--sign-key', key);
    expect(cli.code, cli.stderr).toBe(0);
    const digest = createHash('sha256')
      .update(await readFile(model))
      .digest('hex');
    const version = `0.0.0+sha256.${digest.slice(0, 12)}`;
    const result = JSON.parse(cli.stdout) as DeployJson;
    expect(result.status).toBe('SUCCEEDED');
    expect(result.things[0]?.statusDetails).toMatchObject({ model: 'mlp', version });
    const response = await fetch(`${http}/v2/models/mlp/infer`, {
      method: 'POST',
      body: JSON.stringify({
        inputs: [{ name: 'x', shape: [1, 16], datatype: 'FP32', data: new Array(16).fill(0.5) }],
      }),
    });
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({ model_name: 'mlp', model_version: version });
  });

  it('wraps the same model to the same artifact: deploying it again is "already installed"', async () => {
    const cli = await deployCli(model, '--sign-key', key);
    expect(cli.code, cli.stderr).toBe(0);
    expect((JSON.parse(cli.stdout) as DeployJson).things[0]?.statusDetails.reason).toMatch(/already installed/);
  });

  it('names the file the user gave, never a temporary copy, when it is not an artifact or a model', async () => {
    const unused = `mqtt://127.0.0.1:${await freePort()}`;
    const notes = join(dir, 'notes.txt');
    await writeFile(notes, 'not a model\n');
    const broken = join(dir, 'broken.tar.gz');
    await writeFile(broken, Buffer.concat([Buffer.from([0x1f, 0x8b, 0x08, 0x00]), Buffer.alloc(64, 7)]));
    const cases = [
      { artifact: notes, code: 'INVALID_ARGUMENT' },
      { artifact: broken, code: 'ARTIFACT_ARCHIVE_INVALID' },
    ];
    for (const { artifact, code } of cases) {
      const error = await deploy({ artifact, things: [THING], brokerUrl: unused }).catch((e: unknown) => e);
      expect(error).toMatchObject({ code });
      expect((error as Error).message).toContain(artifact);
      expect((error as Error).message).not.toMatch(/outpost-deploy-|outpost-artifact-/);
    }
  });

  it('refuses --sign-key for something that is an artifact already', async () => {
    const artifact = (await sampleCnnArtifact(join(dir, 'artifacts'))).dir;
    const cli = await deployCli(artifact, '--sign-key', key);
    expect(cli.code).toBe(1);
    expect(cli.stderr).toMatch(/is an artifact already.*\[INVALID_ARGUMENT\]/);
  });
});
