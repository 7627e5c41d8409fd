import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deploy } from '../../fleet/deploy.js';
import { Guardrails, type GuardrailAlarm } from '../../device-agent/deployment/guardrails.js';
import { OutpostError } from '../../runtime/errors.js';
import type { InferenceEvent } from '../../runtime/server/serving/service.js';
import { startBroker, type TestBroker } from '../helpers/broker.js';
import { runCli } from '../helpers/cli.js';
import { deploymentState, startAgent, waitFor, type AgentProcess } from '../helpers/agent.js';
import { suiteTmpDir } from '../helpers/tmp.js';
import {
  agentArgs,
  cnnArtifact,
  fleetTls,
  lookupArtifact,
  signingKeys,
  type Keys,
  inferCnnVersion,
} from '../helpers/signed-artifacts.js';

const DEPLOY_TIMEOUT_MS = 60_000; // ms for one deployment to reach a terminal status

/** A production call as the service reports it; the guardrail logic only reads these fields. */
function call(version: string, ms: number, error?: unknown): InferenceEvent {
  return { name: 'cnn', version, ms, feeds: {}, ...(error === undefined ? {} : { error }) };
}

describe('Guardrails (fake clock)', () => {
  function setup(options: Partial<ConstructorParameters<typeof Guardrails>[0]> = {}) {
    let now = 0;
    const alarms: GuardrailAlarm[] = [];
    const guardrails = new Guardrails({ windowSeconds: 60, minRequests: 10, now: () => now, ...options });
    guardrails.watch('cnn', '2.0.0', (alarm) => alarms.push(alarm));
    return { guardrails, alarms, advance: (ms: number) => (now += ms) };
  }

  it('raises one error-rate alarm once minRequests are counted and the rate passes the threshold', () => {
    const { guardrails, alarms } = setup({ maxErrorRate: 0.2 });
    const failure = new OutpostError('INFERENCE_FAILED', 'kernel failed');
    for (let i = 0; i < 3; i++) guardrails.observer.onInference(call('2.0.0', 1, failure));
    expect(alarms).toEqual([]); // 3 of 3 failed, but 3 calls prove nothing yet
    for (let i = 0; i < 7; i++) guardrails.observer.onInference(call('2.0.0', 1));
    expect(alarms.map((a) => a.code)).toEqual(['GUARDRAIL_ERROR_RATE']);
    expect(alarms[0]?.stats).toMatchObject({ requests: 10, errors: 3, errorRate: 0.3 });
    expect(alarms[0]?.message).toContain('3 of 10 calls failed');
    guardrails.observer.onInference(call('2.0.0', 1, failure));
    expect(alarms).toHaveLength(1);
    expect(guardrails.watching('cnn')).toBe(false);
  });

  it("does not count the caller's mistakes (malformed input) or other versions' calls", () => {
    const { guardrails, alarms } = setup({ maxErrorRate: 0.1 });
    const callerError = new OutpostError('INPUT_SHAPE_MISMATCH', 'wrong shape');
    for (let i = 0; i < 50; i++) guardrails.observer.onInference(call('2.0.0', 1, callerError));
    for (let i = 0; i < 50; i++) guardrails.observer.onInference(call('1.0.0', 1, new Error('old version broke')));
    for (let i = 0; i < 10; i++) guardrails.observer.onInference(call('2.0.0', 1));
    expect(alarms).toEqual([]);
    expect(guardrails.report('cnn')).toMatchObject({ requests: 10, errors: 0 });
  });

  it('raises a latency alarm when the p99 of recent calls passes maxP99Ms', () => {
    const { guardrails, alarms } = setup({ maxP99Ms: 50 });
    for (let i = 0; i < 100; i++) guardrails.observer.onInference(call('2.0.0', 5));
    expect(alarms).toEqual([]);
    // One slow call in 101 is within p99; the second makes the p99 itself slow.
    guardrails.observer.onInference(call('2.0.0', 80));
    expect(alarms).toEqual([]);
    guardrails.observer.onInference(call('2.0.0', 80));
    expect(alarms.map((a) => a.code)).toEqual(['GUARDRAIL_LATENCY']);
    expect(alarms[0]?.stats.p99Ms).toBe(80);
  });

  it('stops watching when the window has passed: later failures raise nothing', () => {
    const { guardrails, alarms, advance } = setup({ maxErrorRate: 0.01, windowSeconds: 10 });
    for (let i = 0; i < 10; i++) guardrails.observer.onInference(call('2.0.0', 1));
    advance(10_001);
    expect(guardrails.watching('cnn')).toBe(false);
    for (let i = 0; i < 20; i++) guardrails.observer.onInference(call('2.0.0', 1, new Error('late')));
    expect(alarms).toEqual([]);
  });

  it('refuses thresholds that cannot work', () => {
    expect(() => new Guardrails({ windowSeconds: 0, minRequests: 1 })).toThrow(/windowSeconds/);
    expect(() => new Guardrails({ windowSeconds: 1, minRequests: 0.5 })).toThrow(/minRequests/);
    expect(() => new Guardrails({ windowSeconds: 1, minRequests: 1, maxErrorRate: 1.5 })).toThrow(/maxErrorRate/);
  });
});

describe('device agent: guardrail rollback after a deployment (real agent, Mosquitto)', () => {
  const THING = 'guarded-1';
  let dir: string;
  let dispose: () => Promise<void>;
  let broker: TestBroker;
  let trusted: Keys;
  let args: string[];
  let agent: AgentProcess;
  let http: string;

  beforeAll(async () => {
    ({ dir, dispose } = await suiteTmpDir());
    broker = await startBroker();
    trusted = await signingKeys(dir, 'trusted');
    // Any real call takes longer than 1 µs: the first calls after a deployment trip the latency alarm.
    const config = join(dir, 'agent.json');
    await writeFile(
      config,
      JSON.stringify({ thing: THING, guardrails: { windowSeconds: 600, minRequests: 5, maxP99Ms: 0.001 } }),
    );
    args = await agentArgs(broker, THING, trusted.publicKeyPath, config);
    agent = startAgent(args, join(dir, 'data'));
    http = await agent.http();
  }, 60_000);

  afterAll(async () => {
    await agent.stop();
    await broker.stop();
    await dispose();
  });

  const infer = (): Promise<string> => inferCnnVersion(http);

  async function status(): Promise<{ active: { version: string }[]; guardrails: { version: string }[] }> {
    const { stdout, code, stderr } = await runCli(['agent', 'status', '--data-dir', agent.dataDir, '--json']);
    expect(code, stderr).toBe(0);
    return JSON.parse(stdout) as Awaited<ReturnType<typeof status>>;
  }

  async function ship(artifact: string, bakeSeconds: number) {
    return deploy({
      artifact,
      things: [THING],
      brokerUrl: broker.urls.mtls,
      tls: await fleetTls(broker),
      rollout: { mode: 'replace', bakeSeconds },
      wait: true as const,
      timeoutMs: DEPLOY_TIMEOUT_MS,
    });
  }

  it("succeeds once the job's bake window passes without an alarm", async () => {
    const result = await ship(await cnnArtifact(join(dir, 'a1'), '1.0.0', trusted), 1);
    expect(result.things[0]?.status, JSON.stringify(result)).toBe('SUCCEEDED');
    const state = await deploymentState(agent.dataDir, result.jobId);
    expect(typeof state?.bakeUntil).toBe('string'); // it did bake
    expect(await infer()).toBe('1.0.0');
    // The agent's endpoint exposes the same Prometheus metrics as `outpost serve`.
    const metrics = await (await fetch(`${http}/metrics`)).text();
    expect(metrics).toMatch(/^outpost_inference_requests_total\{model="cnn",version="1\.0\.0"\} [1-9]/m);
  });

  it('rolls back when the new version trips an alarm while baking, even across a SIGKILL', async () => {
    const shipping = ship(await cnnArtifact(join(dir, 'a2'), '2.0.0', trusted), 120);
    // Killed while baking: the restarted agent resumes the watch for what is left of the window.
    await waitFor(
      async () => ((await status()).guardrails.some((g) => g.version === '2.0.0') ? true : undefined),
      DEPLOY_TIMEOUT_MS,
      () => `a bake of 2.0.0:\n${agent.logs()}`,
    );
    await agent.kill();
    agent = startAgent(args, agent.dataDir);
    http = await agent.http();
    await waitFor(
      async () => ((await status()).guardrails.some((g) => g.version === '2.0.0') ? true : undefined),
      DEPLOY_TIMEOUT_MS,
      () => `the bake of 2.0.0 to resume:\n${agent.logs()}`,
    );
    for (let i = 0; i < 5; i++) await infer();
    const result = await shipping;
    expect(result.things[0]?.status, JSON.stringify(result)).toBe('FAILED');
    expect(result.things[0]?.statusDetails.reasonCode).toBe('GUARDRAIL_LATENCY');
    expect(result.things[0]?.statusDetails.reason).toMatch(/p99 latency passed 0.001 ms after 5 calls/);
    expect(await infer()).toBe('1.0.0');
    const s = await status();
    expect(s.active.map((a) => a.version)).toEqual(['1.0.0']);
    expect(s.guardrails).toEqual([]);
  });

  it('rolls back on the error rate when the new version fails real calls, and serves nothing rather than it', async () => {
    const shipping = ship(await lookupArtifact(join(dir, 'a3'), '1.0.0', trusted), 120);
    await waitFor(
      async () => ((await status()).guardrails.some((g) => g.version === '1.0.0') ? true : undefined),
      DEPLOY_TIMEOUT_MS,
      () => `a bake of lookup@1.0.0:\n${agent.logs()}`,
    );
    const lookup = (x: number) =>
      fetch(`${http}/v2/models/lookup/infer`, {
        method: 'POST',
        body: JSON.stringify({ inputs: [{ name: 'x', shape: [1], datatype: 'FP32', data: [x] }] }),
      });
    expect((await lookup(3)).status).toBe(200); // the test vectors' kind of input works
    // Out of the table: Gather fails. With the good call, the fifth counted call (minRequests) raises the alarm.
    for (let i = 0; i < 4; i++) expect((await lookup(1000)).status).toBe(500);
    const result = await shipping;
    expect(result.things[0]?.status, JSON.stringify(result)).toBe('FAILED');
    expect(result.things[0]?.statusDetails.reasonCode).toBe('GUARDRAIL_ERROR_RATE');
    expect(result.things[0]?.statusDetails.reason).toMatch(
      /4 of 5 calls failed \(80\.0 %\), more than the 5\.0 % allowed/,
    );
    // Its first version: nothing served it before, so nothing serves it now; the other model is untouched.
    expect((await fetch(`${http}/v2/models/lookup/ready`)).status).toBe(404);
    expect(await infer()).toBe('1.0.0');
  });
});
