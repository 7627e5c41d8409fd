import { spawn } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  Simulator,
  planDevices,
  planOutcomes,
  type SimulationSummary,
  type SimulatorOptions,
} from '../../../device-agent/simulator/index.js';
import type { DeploymentView } from '../../../fleet/index.js';
import { generateSigningKeys } from '../../../runtime/artifact/index.js';
import { waitFor } from '../../helpers/agent.js';
import { sampleCnnArtifact } from '../../helpers/artifacts.js';
import { startBroker, type TestBroker } from '../../helpers/broker.js';
import { runCli } from '../../helpers/cli.js';
import { cliEntry } from '../../helpers/cli-entry.js';
import { startFleet, type FleetProcess } from '../../helpers/fleet.js';
import { ROOT } from '../../helpers/models.js';
import { suiteTmpDir } from '../../helpers/tmp.js';

/*
 * `outpost fleet simulate` and its library against real Mosquitto (or the embedded broker) and a real `fleet serve`
 * child process on SQLite: the registry sees agents, deployments end with the seeded outcomes, and the simulated
 * devices verify what they receive with the agent's own code.
 */
const SETTLE_MS = 90_000; // ms for 50 simulated devices to register and finish a small artifact on a shared machine
const SIMULATE_READY_MS = 60_000; // ms for the CLI (through tsx) to connect its devices

let broker: TestBroker;
let tmp: { dir: string; dispose: () => Promise<void> };
let fleet: FleetProcess;
let artifact: string;
const keys = generateSigningKeys();
const simulators: Simulator[] = [];

beforeAll(async () => {
  broker = await startBroker();
  tmp = await suiteTmpDir('outpost-fleet-simulate-');
  fleet = await startFleet(['--broker', broker.urls.tcp, '--data-dir', join(tmp.dir, 'fleet')]);
  artifact = (await sampleCnnArtifact(join(tmp.dir, 'a'), { signed: true, keys })).dir;
}, 60_000);

afterAll(async () => {
  for (const s of simulators) await s.stop();
  await fleet.stop();
  await broker.stop();
  await tmp.dispose();
});

async function deploy(artifactDir: string, things: readonly string[], jobId: string): Promise<void> {
  const cli = await runCli([
    'fleet',
    'deploy',
    artifactDir,
    '--thing',
    things.join(','),
    '--job-id',
    jobId,
    '--fleet',
    fleet.url,
  ]);
  expect(cli.code, cli.stderr).toBe(0);
}

/** The deployment once `count` of its executions have ended (are no longer QUEUED or IN_PROGRESS). */
function ended(jobId: string, count: number): Promise<DeploymentView> {
  return waitFor(
    async () => {
      const d = await fleet.deployment(jobId);
      const done = d.executions.filter((e) => e.status !== 'QUEUED' && e.status !== 'IN_PROGRESS');
      return done.length >= count ? d : undefined;
    },
    SETTLE_MS,
    () => `${count} executions of ${jobId} to end`,
  );
}

async function registered(prefix: string, count: number): Promise<{ thingName: string; connected: boolean }[]> {
  return waitFor(
    async () => {
      const r = await fleet.api('GET', '/v1/things');
      const things = (r.body as { things: { thingName: string; connected: boolean }[] }).things.filter((t) =>
        t.thingName.startsWith(prefix),
      );
      return things.length >= count ? things : undefined;
    },
    SETTLE_MS,
    () => `${count} things named ${prefix}* in the registry`,
  );
}

/** The simulator's own record of `jobId` once `count` of its devices ended it (just after the fleet heard). */
function seenBy(s: Simulator, jobId: string, count: number) {
  return waitFor(
    () => {
      const seen = s.seen.filter((j) => j.jobId === jobId);
      return seen.length >= count ? seen : undefined;
    },
    SETTLE_MS,
    () => `${count} devices to record ${jobId}`,
  );
}

async function simulator(options: Partial<SimulatorOptions> & Pick<SimulatorOptions, 'prefix' | 'devices'>) {
  const s = new Simulator({
    url: broker.urls.tcp,
    seed: 3,
    targets: [{ target: { profile: 'x86_64:avx2', arch: 'x86_64' }, share: 1 }],
    offlineRate: 0,
    failRate: 0,
    guardrailFailRate: 0,
    dir: join(tmp.dir, options.prefix),
    trustedKeys: [keys.publicKeyPem],
    ...options,
  });
  simulators.push(s);
  await s.start();
  return s;
}

describe('outpost fleet simulate', () => {
  it(
    'registers <prefix>0 … N-1 like agents; a deployment ends with the seeded fail and offline outcomes',
    { timeout: 240_000 },
    async () => {
      const keyFile = join(tmp.dir, 'trusted.pem');
      await writeFile(keyFile, keys.publicKeyPem);
      const options = {
        devices: 50,
        prefix: 'rehearsal-',
        seed: 7,
        failRate: 0.2,
        guardrailFailRate: 0,
        offlineRate: 0.1,
      };
      const child = spawn(
        process.execPath,
        [
          ...cliEntry(),
          'fleet',
          'simulate',
          '--broker',
          broker.urls.tcp,
          '--devices',
          '50',
          '--prefix',
          'rehearsal-',
          '--seed',
          '7',
          '--fail-rate',
          '0.2',
          '--offline-rate',
          '0.1',
          '--targets',
          'x86_64:avx2=0.5,arm64:cortex-a72=0.5',
          '--trust-key',
          keyFile,
          '--json',
        ],
        { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
      );
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
      child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
      const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
      try {
        await waitFor(
          () => (/devices online \(/.test(stderr) ? true : undefined),
          SIMULATE_READY_MS,
          () => stderr,
        );
        const plan = planDevices({
          ...options,
          targets: [
            { target: { profile: 'x86_64:avx2', arch: 'x86_64' }, share: 0.5 },
            { target: { profile: 'arm64:cortex-a72', arch: 'arm64' }, share: 0.5 },
          ],
        });
        const things = await registered('rehearsal-', 50);
        expect(things.map((t) => t.thingName).sort()).toEqual(plan.map((d) => d.thing).sort());
        const offline = plan.filter((d) => d.offline).map((d) => d.thing);
        expect(offline).toHaveLength(5);
        // Offline devices were online once (the registry knows their target) and are dark now.
        expect(
          things
            .filter((t) => !t.connected)
            .map((t) => t.thingName)
            .sort(),
        ).toEqual([...offline].sort());
        const pi = await fleet.thing(plan.find((d) => d.target.arch === 'arm64')?.thing ?? '');
        expect(pi?.target).toMatchObject({ arch: 'arm64', profile: 'arm64:cortex-a72' });

        await deploy(
          artifact,
          plan.map((d) => d.thing),
          'rehearse-1',
        );
        const done = await ended('rehearse-1', 45);
        const outcomes = planOutcomes(options, 'rehearse-1');
        const expected = Object.fromEntries(
          plan.map((d) => [d.thing, d.offline ? 'QUEUED' : outcomes[d.index] === 'fail' ? 'FAILED' : 'SUCCEEDED']),
        );
        expect(Object.fromEntries(done.executions.map((e) => [e.thing, e.status]))).toEqual(expected);
        const failed = done.executions.find((e) => e.status === 'FAILED');
        expect(failed?.statusDetails.reasonCode).toBe('SELF_TEST_FAILED');
        expect(failed?.statusDetails.reason).toMatch(/^self-testing: .*simulated/);

        child.kill('SIGTERM');
        expect(await exited, stderr).toBe(0);
        const summary = JSON.parse(stdout) as SimulationSummary;
        expect(summary.devices).toMatchObject({ total: 50, offlineAtStart: 5, cameOnline: 0, failedToStart: 0 });
        expect(summary.targets).toEqual({ 'x86_64:avx2': 25, 'arm64:cortex-a72': 25 });
        const fails = outcomes.filter((o, i) => o === 'fail' && !plan[i]?.offline).length;
        expect(summary.jobs).toMatchObject([
          {
            jobId: 'rehearse-1',
            devices: 45,
            succeeded: 45 - fails,
            failed: fails,
            reasons: { SELF_TEST_FAILED: fails },
          },
        ]);
      } finally {
        if (child.exitCode === null) child.kill('SIGKILL');
      }
    },
  );

  it('50 simulated devices, 5 of them coming online late, all succeed', { timeout: 240_000 }, async () => {
    const s = await simulator({ devices: 50, prefix: 'fifty-', offlineRate: 0.1, onlineAfterMs: 3_000 });
    await registered('fifty-', 50);
    await deploy(
      artifact,
      s.plan.map((d) => d.thing),
      'fifty-1',
    );
    const done = await ended('fifty-1', 50);
    expect(done.state).toBe('COMPLETED');
    expect(done.executions.every((e) => e.status === 'SUCCEEDED')).toBe(true);
    const late = new Set(s.plan.filter((d) => d.offline).map((d) => d.thing));
    expect(s.summary().devices).toMatchObject({ offlineAtStart: 5, cameOnline: 5, online: 50 });
    const seen = await seenBy(s, 'fifty-1', 50);
    expect(seen.filter((j) => late.has(j.thing))).toHaveLength(5);
  });

  it(
    'refuses an artifact signed by an untrusted key, and one whose manifest changed after signing',
    { timeout: 240_000 },
    async () => {
      const s = await simulator({ devices: 3, prefix: 'strict-' });
      await registered('strict-', 3);
      const things = s.plan.map((d) => d.thing);
      const stranger = (await sampleCnnArtifact(join(tmp.dir, 'stranger'), { signed: true, version: '2.0.0' })).dir;
      await deploy(stranger, things, 'untrusted-1');
      const untrusted = await ended('untrusted-1', 3);
      for (const e of untrusted.executions)
        expect(e).toMatchObject({ status: 'FAILED', statusDetails: { reasonCode: 'ARTIFACT_SIGNATURE_UNTRUSTED' } });

      // Signed by the trusted key, then the manifest edited: the fleet (no trust keys) takes it, the devices do not.
      const tampered = (await sampleCnnArtifact(join(tmp.dir, 'tampered'), { signed: true, keys, version: '3.0.0' }))
        .dir;
      const manifestPath = join(tampered, 'manifest.json');
      const manifest = JSON.parse(await readFile(manifestPath, 'utf8')) as { producer: { outpost: string } };
      manifest.producer.outpost = 'tampered';
      await writeFile(manifestPath, JSON.stringify(manifest, null, 2));
      await deploy(tampered, things, 'tampered-1');
      const refused = await ended('tampered-1', 3);
      for (const e of refused.executions) {
        expect(e).toMatchObject({ status: 'FAILED', statusDetails: { reasonCode: 'ARTIFACT_SIGNATURE_INVALID' } });
        // The files layout: refused from the delivery index, before any payload byte (docs/job-document.md).
        expect(e.statusDetails.reason).toMatch(/^downloading: /);
        expect(e.bytesFetched).toBe(
          e.statusDetails.bytesFetched === undefined ? null : Number(e.statusDetails.bytesFetched),
        );
      }
      await seenBy(s, 'tampered-1', 3);
      expect(s.summary().jobs.map((j) => [j.jobId, j.failed])).toEqual([
        ['untrusted-1', 3],
        ['tampered-1', 3],
      ]);
    },
  );

  it(
    'a guardrail failure reports FAILED GUARDRAIL_ERROR_RATE after its bake and rolls the device back',
    { timeout: 240_000 },
    async () => {
      const s = await simulator({ devices: 4, prefix: 'bake-', guardrailFailRate: 0.5, bakeSeconds: 1 });
      await registered('bake-', 4);
      await deploy(
        artifact,
        s.plan.map((d) => d.thing),
        'bake-1',
      );
      const done = await ended('bake-1', 4);
      const outcomes = planOutcomes({ devices: 4, seed: 3, failRate: 0, guardrailFailRate: 0.5 }, 'bake-1');
      for (const d of s.plan) {
        const e = done.executions.find((x) => x.thing === d.thing);
        if (outcomes[d.index] === 'guardrail-fail') {
          expect(e).toMatchObject({ status: 'FAILED', statusDetails: { reasonCode: 'GUARDRAIL_ERROR_RATE' } });
          expect(e?.statusDetails.reason).toMatch(/^baking: sample-cnn@1\.0\.0: 6 of 40 calls failed/);
        } else expect(e).toMatchObject({ status: 'SUCCEEDED', statusDetails: { reasonCode: 'OK' } });
      }
      // What each device serves now, as its status says: the new version, or (rolled back) nothing.
      const models = await waitFor(async () => {
        const views = await Promise.all(s.plan.map((d) => fleet.thing(d.thing)));
        const served = views.map((v) => v?.models.map((m) => `${m.model}@${m.version}`).join(',') ?? '?');
        return served.filter((m) => m === '').length === 2 ? served : undefined;
      }, SETTLE_MS);
      expect(models).toEqual(s.plan.map((d) => (outcomes[d.index] === 'guardrail-fail' ? '' : 'sample-cnn@1.0.0')));
    },
  );

  it.each([
    [['--targets', 'x86_64:nope=1'], /"x86_64:nope" is not a target profile; known: .*x86_64:avx2/],
    [['--fail-rate', '2'], /"2" is not a share between 0 and 1/],
    [['--latency', 'soon'], /"soon" is not a duration/],
    [['--fail-rate', '0.7', '--guardrail-fail-rate', '0.7'], /add up to more than 1 \[INVALID_ARGUMENT\]/],
  ])('fleet simulate %j is a one-line usage error', async (args, message) => {
    const r = await runCli(['fleet', 'simulate', '--devices', '2', '--broker', broker.urls.tcp, ...args]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(message);
  });
});
