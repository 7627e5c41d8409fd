import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { compile } from '../../compiler/index.js';
import type { parseAgentConfig } from '../../device-agent/index.js';
import { Agent, DEFAULT_TARGETS, Simulator } from '../../device-agent/index.js';
import { type ArtifactView, type DeploymentView, type ThingView, parseAbort, serveFleet } from '../../fleet/index.js';
import { OutpostError } from '../../runtime/errors.js';
import { FleetClient } from './fleet/client.js';
import { strategyText, wavesText } from './fleet/print.js';
import { isSettled } from './fleet/status.js';

/**
 * The fleet part of `outpost demo`: the fleet service in this process (SQLite in the demo's directory) on the demo's
 * embedded broker, the demo's real agent plus simulated devices of two targets, then two rollouts through the
 * service's HTTP API: a canary that bakes and goes on to everyone, and one whose canary fails on purpose, so the
 * abort, the rollback of the canary devices that switched, and nobody outside the canary told, show. See
 * docs/rollouts.md.
 */
export interface FleetDemoOptions {
  readonly dir: string;
  readonly brokerUrl: string;
  /** The sample CNN (ONNX) and the signing key the one-device part used. */
  readonly model: string;
  readonly signKey: string;
  readonly publicKey: string;
  /** The one-device part's agent config: the same device, started again once the fleet listens. */
  readonly agentConfig: ReturnType<typeof parseAgentConfig>;
  readonly step: (text: string) => void;
  /** Inference on the real agent's endpoint: the version that answered. */
  readonly infer: (http: string) => Promise<{ version: string }>;
}

const SIMULATED = 15; // simulated devices beside the real agent
const PREFIX = 'sim-';
const SEED = 7; // the simulator's: targets and outcomes
const ROLLOUT_SEED = 'demo'; // the canary's membership
const GOOD = { version: '2.0.0', id: 'cnn-2-0-0', strategy: 'canary:3,bake=2s' } as const;
const BAD = { version: '2.1.0', id: 'cnn-2-1-0', strategy: 'canary:5,bake=2s' } as const;
/** Share of the simulated devices whose (stand-in) self-test fails the second rollout's job, and only that one. */
const BAD_FAIL_RATE = 0.5;
const ABORT = 'failureType=ALL,thresholdPercentage=20,minNumberOfExecutedThings=3';
const POLL_MS = 250; // ms between looks at a deployment
const SETTLE_MS = 60_000; // ms for the fleet to register devices, or a deployment to settle
const TARGETS = ['host', 'arm64:cortex-a72'] as const; // one artifact per target in each version

/**
 * The simulator with one change, for the demo: the seeded fail rate applies to the second rollout's job only, so the
 * first rollout completes and the second one's canary fails.
 */
class DemoSimulator extends Simulator {
  override outcomeOf(jobId: string, index: number): ReturnType<Simulator['outcomeOf']> {
    return jobId === BAD.id ? super.outcomeOf(jobId, index) : 'succeed';
  }
}

async function until<T>(what: string, look: () => Promise<T | undefined>): Promise<T> {
  const deadline = performance.now() + SETTLE_MS;
  for (;;) {
    const value = await look();
    if (value !== undefined) return value;
    if (performance.now() > deadline) throw new OutpostError('TIMEOUT', `demo: ${what} after ${SETTLE_MS} ms`);
    await sleep(POLL_MS);
  }
}

export async function demoFleet(o: FleetDemoOptions): Promise<void> {
  const { step } = o;
  const artifacts: Record<string, string[]> = {};
  await mkdir(join(o.dir, 'fleet-artifacts'), { recursive: true });
  for (const version of [GOOD.version, BAD.version]) {
    const built: string[] = [];
    for (const target of TARGETS) {
      const output = join(o.dir, 'fleet-artifacts', `cnn-${version}-${target.replace(/[^A-Za-z0-9]/g, '_')}.tar.gz`);
      const report = await compile({ model: o.model, target, output, name: 'cnn', version, signKey: o.signKey });
      built.push(output);
      step(`compiled cnn@${version} for ${report.target}: ${report.variants.map((v) => v.id).join(', ')}`);
    }
    artifacts[version] = built;
  }

  const fleet = await serveFleet({
    brokerUrl: o.brokerUrl,
    dataDir: join(o.dir, 'fleet'),
    trustedKeys: [o.publicKey],
    http: { host: '127.0.0.1', port: 0 },
    rollouts: { intervalMs: POLL_MS },
  });
  const simulator = new DemoSimulator({
    url: o.brokerUrl,
    devices: SIMULATED,
    prefix: PREFIX,
    seed: SEED,
    targets: DEFAULT_TARGETS,
    offlineRate: 0,
    failRate: BAD_FAIL_RATE,
    guardrailFailRate: 0,
    dir: join(o.dir, 'simulated'),
    trustedKeys: [o.publicKey],
  });
  const agent = new Agent({ config: o.agentConfig });
  try {
    step(`fleet service in this process: API ${fleet.url}, ${fleet.store.dialect} ${fleet.store.location}`);
    const client = await FleetClient.from({ fleet: fleet.url });
    await simulator.start();
    const { http } = await agent.start();
    const thing = o.agentConfig.thing;
    const everyone = [thing, ...simulator.plan.map((d) => d.thing)];
    const things = await until('devices registered', async () => {
      const { things: seen } = await client.get<{ things: ThingView[] }>('/v1/things');
      const known = seen.filter((t) => everyone.includes(t.thingName) && t.target.profile !== undefined);
      return known.length === everyone.length ? known : undefined;
    });
    const targets = new Map<string, number>();
    for (const t of things) targets.set(t.target.profile ?? '?', (targets.get(t.target.profile ?? '?') ?? 0) + 1);
    step(
      `registered ${things.length} devices: "${thing}" (real agent) + ${SIMULATED} simulated; targets ${[...targets].map(([p, n]) => `${p}=${n}`).join(' ')}`,
    );

    const stored: Record<string, string[]> = {};
    for (const [version, files] of Object.entries(artifacts)) {
      stored[version] = [];
      for (const file of files) stored[version].push((await client.upload<ArtifactView>('/v1/artifacts', file)).sha256);
    }
    step(`uploaded ${Object.values(stored).flat().length} signed artifacts (the service verified each)`);

    const rollout = async (r: typeof GOOD | typeof BAD, abort: boolean): Promise<DeploymentView> => {
      const started = performance.now();
      const created = await client.post<DeploymentView>('/v1/deployments', {
        id: r.id,
        artifacts: stored[r.version],
        things: everyone,
        strategy: r.strategy,
        then: 'all-at-once',
        seed: ROLLOUT_SEED,
        ...(abort ? { abortConfig: parseAbort([ABORT]) } : {}),
      });
      step(`deploy cnn@${r.version} to ${everyone.length} devices, strategy ${strategyText(created)}`);
      const d = await watch(client, r.id, step);
      const c = d.jobProcessDetails;
      step(
        `cnn@${r.version}: ${d.state} in ${((performance.now() - started) / 1000).toFixed(2)} s, ${c.numberOfSucceededThings ?? 0} succeeded, ${(c.numberOfFailedThings ?? 0) + (c.numberOfRejectedThings ?? 0)} failed, ${c.numberOfCanceledThings ?? 0} canceled${d.reason === null ? '' : ` (${d.reason})`}`,
      );
      return d;
    };

    const good = await rollout(GOOD, false);
    const fits = good.executions.map((e) => `${e.artifactTarget ?? '?'} (${e.fit ?? '?'})`);
    const byFit = new Map<string, number>();
    for (const f of fits) byFit.set(f, (byFit.get(f) ?? 0) + 1);
    step(`  artifacts by fit: ${[...byFit].map(([f, n]) => `${f} ×${n}`).join(', ')}`);
    step(`  "${thing}" answers with version ${(await o.infer(http)).version}`);

    await rollout(BAD, true);
    // An execution still IN_PROGRESS at the abort finishes first; a canary device that switched joins the rollback.
    const bad = await until('the aborted canary to end', async () => {
      const d = await client.get<DeploymentView>(`/v1/deployments/${BAD.id}`);
      const open = d.executions.some((e) => e.status === 'QUEUED' || e.status === 'IN_PROGRESS');
      const switched = d.executions.some((e) => e.status === 'SUCCEEDED');
      const rollbacks = Object.keys(d.rollout?.rollbacks ?? {}).length;
      return open || (switched && rollbacks === 0) ? undefined : d;
    });
    step(`  abort figures: ${JSON.stringify(bad.rollout?.abort ?? {})}`);
    const canary = new Set(bad.executions.filter((e) => (e.wave ?? 0) === 0).map((e) => e.thing));
    const released = bad.executions.filter((e) => !canary.has(e.thing) && e.released).length;
    const seenOutside = simulator.seen.filter((j) => j.jobId === BAD.id && !canary.has(j.thing)).length;
    step(
      `  devices outside the canary that received it: ${released + seenOutside} (released by the fleet ${released}, jobs seen by the simulated devices ${seenOutside})`,
    );
    for (const [version, id] of Object.entries(bad.rollout?.rollbacks ?? {})) {
      const rb = await watch(client, id, () => undefined);
      step(
        `  rollback ${id} to cnn@${version}: ${rb.state}, ${rb.jobProcessDetails.numberOfSucceededThings ?? 0} of ${rb.executions.length} switched canary devices back on ${version}`,
      );
    }
    const where = canary.has(thing) ? 'in the canary, rolled back' : 'outside the canary';
    step(`  "${thing}" (${where}) answers with version ${(await o.infer(http)).version}`);
  } finally {
    await agent.stop();
    await simulator.stop();
    await fleet.close();
  }
}

/** Polls a deployment until it settles, printing its waves each time they change. */
async function watch(client: FleetClient, id: string, step: (text: string) => void): Promise<DeploymentView> {
  let last = '';
  const d = await until(`deployment ${id} to end`, async () => {
    const now = await client.get<DeploymentView>(`/v1/deployments/${encodeURIComponent(id)}`);
    const text = `${now.state} ${wavesText(now)}`;
    if (text !== last) step(`  ${text}`);
    last = text;
    return isSettled(now) ? now : undefined;
  });
  return d;
}
