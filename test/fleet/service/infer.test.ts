import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent } from '../../../device-agent/agent.js';
import { parseAgentConfig } from '../../../device-agent/config.js';
import { type RunningFleet, serveFleet } from '../../../fleet/index.js';
import { isOutpostError } from '../../../runtime/errors.js';
import type { Model } from '../../../runtime/model/model.js';
import { waitFor } from '../../helpers/agent.js';
import { startBroker, type TestBroker } from '../../helpers/broker.js';
import { runCli } from '../../helpers/cli.js';
import { loadFixtures } from '../../helpers/serving-artifacts.js';
import { suiteTmpDir } from '../../helpers/tmp.js';

/**
 * `outpost fleet infer` and `POST /v1/things/{thing}/infer/{model}`: the fleet (in-process, SQLite) asks a real agent
 * (in-process, serving the sample MLP on ONNX Runtime) over a real broker, and waits for its answer.
 */
const TOKEN = 'infer-test-token';
const THING = 'infer-pi';
const READY_MS = 15_000; // ms for the agent to take requests
const PROBE_TIMEOUT_MS = 500; // ms per probe while waiting for it
const OFFLINE_TIMEOUT_MS = 300; // ms the fleet waits for a thing that is not there

let broker: TestBroker;
let tmp: { dir: string; dispose: () => Promise<void> };
let fleet: RunningFleet;
let agent: Agent;
let mlp: Model;
let tokenFile: string;
let requestFile: string;

const request = {
  inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 16], data: Array.from({ length: 16 }, (_, i) => i / 16) }],
};

beforeAll(async () => {
  broker = await startBroker();
  tmp = await suiteTmpDir('outpost-fleet-infer-');
  tokenFile = join(tmp.dir, 'token');
  await writeFile(tokenFile, TOKEN);
  requestFile = join(tmp.dir, 'request.json');
  await writeFile(requestFile, JSON.stringify(request));
  fleet = await serveFleet({
    brokerUrl: broker.urls.tcp,
    dataDir: join(tmp.dir, 'fleet'),
    http: { port: 0, token: TOKEN },
  });
  ({ mlp } = await loadFixtures(tmp.dir, ['mlp']));
  const config = parseAgentConfig({
    thing: THING,
    dataDir: join(tmp.dir, 'agent'),
    broker: { url: broker.urls.tcp },
    http: { port: 0 },
  });
  agent = new Agent({ config });
  await agent.start();
  await agent.models.swap(mlp);
  await waitFor(
    () =>
      fleet.service.inference.infer(THING, 'none', {}, PROBE_TIMEOUT_MS).then(
        () => true,
        (error: unknown) => {
          if (isOutpostError(error, 'TIMEOUT')) return undefined;
          throw error;
        },
      ),
    READY_MS,
    () => 'the agent to take requests',
  );
}, 60_000);

afterAll(async () => {
  await agent.stop();
  await fleet.close();
  await broker.stop();
  await tmp.dispose();
}, 60_000);

const cli = (...args: string[]) => runCli(['fleet', ...args, '--fleet', fleet.url, '--token-file', tokenFile]);

describe('outpost fleet infer', () => {
  it("prints the device's answer, --json as the API gives it", async () => {
    const expected = await mlp.infer({ x: { data: Float32Array.from(request.inputs[0]?.data ?? []), dims: [1, 16] } });
    const r = await cli('infer', THING, 'mlp', '--input', requestFile, '--json');
    expect(r.code, r.stderr).toBe(0);
    const answer = JSON.parse(r.stdout) as {
      thing: string;
      roundTripMs: number;
      response: { outputs: { name: string; data: number[] }[] };
    };
    expect(answer.thing).toBe(THING);
    expect(answer.roundTripMs).toBeGreaterThan(0);
    const logits = answer.response.outputs.find((o) => o.name === 'logits')?.data ?? [];
    logits.forEach((v, i) => expect(v).toBeCloseTo(expected.logits?.data[i] as number, 5));
    const human = await cli('infer', THING, 'mlp', '--input', requestFile);
    expect(human.code, human.stderr).toBe(0);
    expect(human.stdout).toMatch(new RegExp(`^${THING} mlp@1\\S*: answered in [\\d.]+ ms$`, 'm'));
    expect(human.stdout).toMatch(/^logits\s+FP32\s+\[1, 10\]\s+\[/m);
  });

  it("turns the device's error into the fleet's typed error, and a silent thing into TIMEOUT", async () => {
    const auth = { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' };
    const missing = await fetch(`${fleet.url}/v1/things/${THING}/infer/ghost`, {
      method: 'POST',
      headers: auth,
      body: JSON.stringify(request),
    });
    expect(missing.status).toBe(404);
    expect(((await missing.json()) as { error: { code: string } }).error.code).toBe('MODEL_NOT_FOUND');
    const silent = await fetch(`${fleet.url}/v1/things/nobody/infer/mlp?timeout_ms=${OFFLINE_TIMEOUT_MS}`, {
      method: 'POST',
      headers: auth,
      body: JSON.stringify(request),
    });
    expect(silent.status).toBe(504);
    expect(((await silent.json()) as { error: { code: string } }).error.code).toBe('TIMEOUT');
    const bad = await fetch(`${fleet.url}/v1/things/${THING}/infer/mlp?timeout_ms=-1`, {
      method: 'POST',
      headers: auth,
      body: '{}',
    });
    expect(bad.status).toBe(400);
  });
});
