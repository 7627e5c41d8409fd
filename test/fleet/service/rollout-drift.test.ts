import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DeploymentView, type RunningFleet, parseAbort, serveFleet } from '../../../fleet/index.js';
import { buildRollout, planWaves } from '../../../fleet/rollouts/plan.js';
import { seededRandom } from '../../../runtime/tensor/index.js';
import { type AgentProcess, startAgent, waitFor } from '../../helpers/agent.js';
import { startBroker, type TestBroker } from '../../helpers/broker.js';
import { callMlp, mlpArtifact } from '../../helpers/drift-artifacts.js';
import { LightDevice } from '../../helpers/fleet-device.js';
import { suiteTmpDir } from '../../helpers/tmp.js';
import { agentArgs, signingKeys } from '../../helpers/signed-artifacts.js';

/**
 * A rollout aborted by drift, end to end: a real agent in the canary serves 2.0.0 of the sample MLP (baseline in the
 * artifact), is fed inputs with a shifted mean during the wave's bake, its drift monitor alarms, its status message
 * carries the alarm to the registry, and the DRIFT abort criterion aborts the deployment: the light device outside
 * the canary never gets 2.0.0, and the agent is rolled back to 1.0.0 by a rollback deployment.
 */
const SETTLE_MS = 120_000; // ms for a real agent to download, self-test and switch, on a shared machine
const TOKEN = 'rollout-drift-token';
const AGENT = 'agent-drift';
const LIGHT = 'light-0';
const WINDOW = 200; // calls in the agent's drift window
const SHIFT = 1.5; // the live inputs' mean; the baseline's is 0

let broker: TestBroker;
let tmp: { dir: string; dispose: () => Promise<void> };
let fleet: RunningFleet;
let agent: AgentProcess;
let light: LightDevice | undefined;
const random = seededRandom(18);

async function api(method: string, path: string, body?: unknown): Promise<{ status: number; body: unknown }> {
  const r = await fetch(`${fleet.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: r.status, body: await r.json() };
}

const deployment = async (id: string) => (await api('GET', `/v1/deployments/${id}`)).body as DeploymentView;

beforeAll(async () => {
  broker = await startBroker();
  tmp = await suiteTmpDir('outpost-rollout-drift-');
  const keys = await signingKeys(tmp.dir, 'fleet');
  fleet = await serveFleet({
    brokerUrl: broker.urls.tcp,
    dataDir: join(tmp.dir, 'fleet'),
    trustedKeys: [keys.publicKeyPath],
    http: { port: 0, token: TOKEN },
    rollouts: { intervalMs: 200 },
  });
  const config = join(tmp.dir, 'agent.json');
  await writeFile(config, JSON.stringify({ thing: AGENT, statusIntervalSeconds: 1, monitor: { window: WINDOW } }));
  agent = startAgent(await agentArgs(broker, AGENT, keys.publicKeyPath, config), join(tmp.dir, 'agent'));
  for (const version of ['1.0.0', '2.0.0']) {
    const dir = await mlpArtifact(join(tmp.dir, `a-${version}`), version, keys.privateKeyPem, random);
    await fleet.service.operations.ingest(dir);
  }
  await agent.http();
}, 180_000);

afterAll(async () => {
  await light?.close();
  await agent.stop();
  await fleet.close();
  await broker.stop();
  await tmp.dispose();
});

describe('a canary aborted by drift (a real agent, Mosquitto, SQLite)', () => {
  it(
    'aborts on DRIFT during the bake, never releases the rest, and rolls the agent back',
    { timeout: 400_000 },
    async () => {
      const host = await waitFor(async () => (await fleet.store.getThing(AGENT))?.target.profile, 30_000);
      light = await LightDevice.start({
        url: broker.urls.tcp,
        thing: LIGHT,
        dir: join(tmp.dir, 'light'),
        target: { profile: host, arch: 'x86_64' },
      });
      await waitFor(
        async () => ((await fleet.store.getThing(LIGHT))?.target.profile === host ? true : undefined),
        30_000,
      );
      const artifacts = await fleet.store.listArtifacts();
      const sha = (version: string) => artifacts.find((a) => a.name === 'mlp' && a.version === version)?.sha256;
      const things = [AGENT, LIGHT];
      const noBake = { rollout: { mode: 'replace', bakeSeconds: 0 } };

      const v1 = await api('POST', '/v1/deployments', {
        id: 'mlp-1',
        artifacts: [sha('1.0.0')],
        things,
        options: noBake,
      });
      expect(v1.status, JSON.stringify(v1.body)).toBe(201);
      await waitFor(
        async () => ((await deployment('mlp-1')).state === 'COMPLETED' ? true : undefined),
        SETTLE_MS,
        () => agent.logs().slice(-3000),
      );

      // A seed whose one-device canary is the agent (membership is deterministic and recorded).
      const members = things.map((name) => ({ name, stratum: host }));
      let seed = '';
      for (let i = 0; i < 100 && seed === ''; i++) {
        const plan = planWaves(buildRollout({ strategy: 'canary:1,bake=10m', seed: `s${i}` }, 'x'), members);
        if (plan.membership.get(AGENT) === 0) seed = `s${i}`;
      }
      expect(seed).not.toBe('');
      const v2 = await api('POST', '/v1/deployments', {
        id: 'mlp-2',
        artifacts: [sha('2.0.0')],
        things,
        strategy: 'canary:1,bake=10m',
        then: 'all-at-once',
        seed,
        options: noBake,
        abortConfig: parseAbort(['failureType=DRIFT,thresholdPercentage=50,minNumberOfExecutedThings=1']),
      });
      expect(v2.status, JSON.stringify(v2.body)).toBe(201);
      const http = await agent.http();
      await waitFor(
        async () => {
          const d = await deployment('mlp-2');
          return d.executions.find((e) => e.thing === AGENT)?.status === 'SUCCEEDED' ? true : undefined;
        },
        SETTLE_MS,
        () => agent.logs().slice(-3000),
      );
      // The canary bakes (10 minutes): its callers' inputs have moved away from the training data.
      const aborted = await waitFor(
        async () => {
          const d = await deployment('mlp-2');
          if (d.state !== 'ACTIVE') return d;
          for (let i = 0; i < 50; i++) expect(await callMlp(http, random, SHIFT)).toBe(200);
          return undefined;
        },
        SETTLE_MS,
        () => `the drift abort:\n${agent.logs().slice(-3000)}`,
      );
      expect(aborted.state).toBe('ABORTED');
      expect(aborted.reason).toMatch(/abort criteria tripped on wave 0: DRIFT 100(\.0)?% of 1 executed ≥ 50%/);
      expect(aborted.rollout?.abort).toMatchObject({ scope: 'wave', wave: 0, figures: { executed: 1, drifting: 1 } });
      expect(aborted.executions.find((e) => e.thing === LIGHT)).toMatchObject({ status: 'CANCELED', released: false });
      expect(light.received.map((r) => r.jobId)).toEqual(['mlp-1']);

      // Rolled back: a rollback deployment returns the agent to 1.0.0, which it still has installed.
      await waitFor(
        async () => ((await deployment('mlp-2-rb-1_0_0')).state === 'COMPLETED' ? true : undefined),
        SETTLE_MS,
        () => `the rollback:\n${agent.logs().slice(-3000)}`,
      );
      const back = await waitFor(async () => {
        const t = await fleet.store.getThing(AGENT);
        return t?.models.some((m) => m.version === '1.0.0') === true && !t.models.some((m) => m.version === '2.0.0')
          ? t
          : undefined;
      }, 30_000);
      expect(back.models.map((m) => `${m.model}@${m.version}`)).toEqual(['mlp@1.0.0']);
    },
  );
});
