import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jobsTopics } from '../../../device-agent/protocol/index.js';
import { type DeploymentView, type RunningFleet, serveFleet } from '../../../fleet/index.js';
import { buildRollout, planWaves } from '../../../fleet/rollouts/plan.js';
import { type AgentProcess, startAgent, waitFor } from '../../helpers/agent.js';
import { startBroker, type TestBroker } from '../../helpers/broker.js';
import { runCli } from '../../helpers/cli.js';
import { LightDevice } from '../../helpers/fleet-device.js';
import { connectPeer } from '../../helpers/mqtt.js';
import { suiteTmpDir } from '../../helpers/tmp.js';
import { agentArgs, cnnArtifact, inferCnnVersion, signingKeys, type Keys } from '../../helpers/signed-artifacts.js';

/**
 * A canary whose failures trip the abort criteria, on Mosquitto with two real agents (one whose guardrail bake
 * alarms) among light devices: no device outside the canary ever receives the job, the canary's switched devices are
 * rolled back through a rollback deployment and report the previous version active, and a device that comes online
 * after its wave was canceled gets nothing.
 */
const SETTLE_MS = 120_000; // ms for real agents to download, self-test and switch
const TOKEN = 'rollout-test-token';
const LIGHT = ['l0', 'l1', 'l2', 'l3', 'l4'];
const LATE = 'late-0';
const CANARY = 3;

let broker: TestBroker;
let tmp: { dir: string; dispose: () => Promise<void> };
let keys: Keys;
let v1: string;
let v2: string;
let fleet: RunningFleet;
let tokenFile: string;
const agents: AgentProcess[] = [];
const lights: LightDevice[] = [];

beforeAll(async () => {
  broker = await startBroker();
  tmp = await suiteTmpDir('outpost-rollout-abort-');
  keys = await signingKeys(tmp.dir, 'fleet');
  v1 = await cnnArtifact(join(tmp.dir, 'a1'), '1.0.0', keys);
  v2 = await cnnArtifact(join(tmp.dir, 'a2'), '2.0.0', keys);
  tokenFile = join(tmp.dir, 'token');
  await writeFile(tokenFile, TOKEN);
  fleet = await serveFleet({
    brokerUrl: broker.urls.tcp,
    dataDir: join(tmp.dir, 'fleet'),
    trustedKeys: [keys.publicKeyPath],
    http: { port: 0, token: TOKEN },
    rollouts: { intervalMs: 200 },
  });
}, 180_000);

afterAll(async () => {
  for (const light of lights) await light.close();
  for (const agent of agents) await agent.stop();
  await fleet.close();
  await broker.stop();
  await tmp.dispose();
});

const cli = (...args: string[]) => runCli(['fleet', ...args, '--fleet', fleet.url, '--token-file', tokenFile]);
async function json<T>(...args: string[]): Promise<T> {
  const r = await cli(...args, '--json');
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as T;
}

async function deployment(id: string): Promise<DeploymentView> {
  const r = await fetch(`${fleet.url}/v1/deployments/${id}`, { headers: { authorization: `Bearer ${TOKEN}` } });
  return (await r.json()) as DeploymentView;
}

async function events(id: string): Promise<{ type: string; data: Record<string, unknown> }[]> {
  const r = await fetch(`${fleet.url}/v1/deployments/${id}/events`, { headers: { authorization: `Bearer ${TOKEN}` } });
  return ((await r.json()) as { events: { type: string; data: Record<string, unknown> }[] }).events;
}

async function inferCnn(http: string): Promise<number> {
  const response = await fetch(`${http}/v2/models/cnn/infer`, {
    method: 'POST',
    body: JSON.stringify({
      inputs: [{ name: 'image', shape: [1, 3, 64, 64], datatype: 'FP32', data: new Array(3 * 64 * 64).fill(0.5) }],
    }),
  });
  await response.arrayBuffer();
  return response.status;
}

describe('a canary that trips the abort criteria (real agents among light devices, Mosquitto, SQLite)', () => {
  it(
    'cancels every other wave, rolls the switched canary back, and counts the guardrail failure',
    { timeout: 400_000 },
    async () => {
      // Two real agents: agent-bad's guardrails alarm on any call (p99 above a microsecond) during its bake.
      const badConfig = join(tmp.dir, 'agent-bad.json');
      await writeFile(
        badConfig,
        JSON.stringify({ thing: 'agent-bad', guardrails: { windowSeconds: 600, minRequests: 3, maxP99Ms: 0.001 } }),
      );
      agents.push(startAgent(await agentArgs(broker, 'agent-ok', keys.publicKeyPath), join(tmp.dir, 'agent-ok')));
      agents.push(
        startAgent(await agentArgs(broker, 'agent-bad', keys.publicKeyPath, badConfig), join(tmp.dir, 'agent-bad')),
      );
      const [ok, bad] = agents as [AgentProcess, AgentProcess];
      const badHttp = await bad.http();
      await ok.http();
      // Light devices report the agents' own target: one stratum, so a seed can put both agents in the canary.
      const host = await waitFor(async () => (await fleet.store.getThing('agent-ok'))?.target.profile, 30_000);
      const target = { profile: host, arch: 'x86_64' as const };
      for (const thing of LIGHT) {
        lights.push(
          await LightDevice.start({
            url: broker.urls.tcp,
            thing,
            dir: join(tmp.dir, 'light'),
            target,
            outcome: 'succeed',
          }),
        );
      }
      // A device that registered once and is offline while the rollout runs.
      const late = await LightDevice.start({
        url: broker.urls.tcp,
        thing: LATE,
        dir: join(tmp.dir, 'light'),
        target,
      });
      // Registered before it goes away (its status message reaches the registry asynchronously).
      await waitFor(
        async () =>
          (await fleet.store.listThings([LATE])).some((r) => r.target.profile !== undefined) ? true : undefined,
        30_000,
        () => `${LATE} registered`,
      );
      await late.close();
      const everyone = ['agent-ok', 'agent-bad', ...LIGHT];
      await waitFor(async () => {
        const things = await fleet.store.listThings();
        return everyone.every((t) => things.some((r) => r.name === t && r.target.profile !== undefined))
          ? true
          : undefined;
      }, 30_000);

      // Version 1 everywhere, no bake.
      const first = await json<DeploymentView>(
        'deploy',
        v1,
        '--thing',
        everyone.join(','),
        '--bake-seconds',
        '0',
        '--job-id',
        'cnn-v1',
        '--wait',
      );
      expect(first.state).toBe('COMPLETED');

      // A seed whose canary holds both real agents and one light device (membership is deterministic and recorded).
      const targets = [...everyone, LATE];
      const things = await fleet.store.listThings(targets);
      const members = things.map((t) => ({ name: t.name, stratum: t.target.profile ?? 'unknown' }));
      let seed = '';
      let canary: string[] = [];
      for (let i = 0; i < 5000 && seed === ''; i++) {
        const plan = planWaves(
          buildRollout({ strategy: `canary:${CANARY},bake=1s`, then: 'linear:50%,every=1s', seed: `s${i}` }, 'x'),
          members,
        );
        const wave0 = targets.filter((t) => plan.membership.get(t) === 0);
        if (wave0.includes('agent-ok') && wave0.includes('agent-bad') && !wave0.includes(LATE))
          [seed, canary] = [`s${i}`, wave0];
      }
      expect(seed).not.toBe('');
      const outside = targets.filter((t) => !canary.includes(t));

      const created = await json<DeploymentView>(
        'deploy',
        v2,
        '--thing',
        targets.join(','),
        '--job-id',
        'cnn-v2',
        '--strategy',
        `canary:${CANARY},bake=1s`,
        '--then',
        'linear:50%,every=1s',
        '--seed',
        seed,
        '--abort',
        'failureType=ALL,thresholdPercentage=30,minNumberOfExecutedThings=3',
      );
      expect(created.rollout?.waves.map((w) => [w.wave, w.devices, w.state])).toEqual([
        [0, 3, expect.any(String)],
        [1, 4, 'PENDING'], // 50 % of all 8
        [2, 1, 'PENDING'],
      ]);
      expect(
        created.executions
          .filter((e) => e.wave === 0)
          .map((e) => e.thing)
          .sort(),
      ).toEqual([...canary].sort());

      // agent-bad bakes v2 under its guardrails: production calls during the bake trip it.
      await waitFor(
        async () => {
          const d = await deployment('cnn-v2');
          if (d.executions.find((e) => e.thing === 'agent-bad')?.status === 'FAILED') return true;
          await inferCnn(badHttp);
          return undefined;
        },
        SETTLE_MS,
        () => `agent-bad's guardrail:\n${bad.logs().slice(-3000)}`,
      );

      const aborted = await waitFor(
        async () => {
          const d = await deployment('cnn-v2');
          return d.state === 'ABORTED' ? d : undefined;
        },
        SETTLE_MS,
        () => 'the abort',
      );
      expect(aborted.reason).toMatch(/abort criteria tripped on wave 0: ALL 33\.3% of 3 executed ≥ 30%/);
      expect(aborted.rollout?.abort).toMatchObject({
        scope: 'wave',
        wave: 0,
        figures: { executed: 3, failed: 1, guardrail: 1 },
      });
      expect(aborted.executions.find((e) => e.thing === 'agent-bad')).toMatchObject({
        status: 'FAILED',
        statusDetails: { reasonCode: 'GUARDRAIL_LATENCY' },
      });
      // Nobody outside the canary was ever released or told.
      for (const thing of outside) {
        expect(
          aborted.executions.find((e) => e.thing === thing),
          thing,
        ).toMatchObject({ status: 'CANCELED', released: false, attempts: 0 });
      }
      for (const light of lights.filter((l) => outside.includes(l.thing)))
        expect(light.received.map((r) => r.jobId)).toEqual(['cnn-v1']);
      expect(aborted.rollout?.waves.map((w) => w.state)).toEqual(['CANCELED', 'CANCELED', 'CANCELED']);

      // The canary's switched devices (agent-ok and its light device) go back to 1.0.0 through a rollback deployment.
      const switched = canary.filter((t) => t !== 'agent-bad');
      const rollback = await waitFor(
        async () => {
          const d = await deployment('cnn-v2-rb-1_0_0');
          return d.state === 'COMPLETED' ? d : undefined;
        },
        SETTLE_MS,
        () => `rollback:\n${ok.logs().slice(-3000)}`,
      );
      expect(rollback.rollout?.rollbackOf).toBe('cnn-v2');
      // agent-ok still had 1.0.0 installed with the same manifest: it re-activated it without fetching a byte.
      expect(rollback.executions.find((e) => e.thing === 'agent-ok')?.statusDetails).toMatchObject({
        version: '1.0.0',
        bytesFetched: '0',
      });
      expect(rollback.executions.map((e) => [e.thing, e.status]).sort()).toEqual(
        switched.map((t) => [t, 'SUCCEEDED']).sort(),
      );
      // The real agents serve 1.0.0 again (their status message is periodic: ask their endpoint); light devices
      // report it in their status at once.
      expect(await inferCnnVersion(await ok.http())).toBe('1.0.0');
      expect(await inferCnnVersion(badHttp)).toBe('1.0.0');
      for (const thing of switched.filter((t) => !t.startsWith('agent-'))) {
        await waitFor(
          async () =>
            (await fleet.store.getThing(thing))?.models.find((m) => m.role !== 'shadow')?.version === '1.0.0'
              ? true
              : undefined,
          30_000,
          () => `${thing} back on 1.0.0`,
        );
      }
      const after = await json<DeploymentView>('status', 'cnn-v2');
      expect(after.rollout?.waves[0]).toMatchObject({ rolledBack: switched.length });
      expect(after.rollout?.rollbacks).toEqual({ '1.0.0': 'cnn-v2-rb-1_0_0' });

      // A device of a canceled wave that comes online now is told of nothing.
      const peer = await connectPeer(broker.urls.tcp, { mqtt5: false, clientId: LATE });
      try {
        await peer.subscribe(jobsTopics.startNextAccepted(LATE));
        await peer.publish(jobsTopics.startNext(LATE), JSON.stringify({ clientToken: 'late' }));
        const [answer] = await peer.inbox.wait(jobsTopics.startNextAccepted(LATE), 1, 10_000);
        expect(JSON.parse(answer?.toString() ?? '{}')).not.toHaveProperty('execution');
      } finally {
        await peer.close();
      }

      // The events tell the story, and the table shows it.
      const log = await events('cnn-v2');
      expect(log.filter((e) => e.type === 'wave.started').map((e) => e.data.wave)).toEqual([0]);
      expect(log.filter((e) => e.type === 'deployment.aborted')).toHaveLength(1);
      expect(
        log
          .filter((e) => e.type === 'execution.released')
          .flatMap((e) => e.data.things as string[])
          .sort(),
      ).toEqual([...canary].sort());
      const printed = await cli('events', 'cnn-v2');
      expect(printed.stdout).toMatch(/deployment\.aborted/);
      // --watch, not on a terminal: plain lines (one here: the deployment has ended).
      const watched = await cli('status', 'cnn-v2', '--watch');
      expect(watched.stdout.trim()).toMatch(
        /^\S+Z cnn-v2 ABORTED wave 0 CANCELED \d\/3 succeeded 1 failed \d rolled back \| wave 1 CANCELED 0\/4/,
      );
      const table = await cli('status', 'cnn-v2');
      expect(table.stdout).toMatch(
        /^WAVE\s+STATE\s+DEVICES\s+QUEUED\s+IN PROGRESS\s+SUCCEEDED\s+FAILED\s+CANCELED\s+ROLLED BACK\s+BAKE LEFT$/m,
      );
    },
  );
});
