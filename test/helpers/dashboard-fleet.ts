import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { connectAsync } from 'mqtt';
import { build, type Options } from 'tsup';
import { DEFAULT_TARGETS, Simulator } from '../../device-agent/index.js';
import { outpostTopics } from '../../device-agent/protocol/index.js';
import type { AgentStatus } from '../../device-agent/storage/status.js';
import { type DeploymentView, type RunningFleet, parseAbort, serveFleet } from '../../fleet/index.js';
import { generateSigningKeys, packArtifact } from '../../runtime/artifact/index.js';
import config from '../../tsup.config.js';
import { sampleCnnArtifact } from './artifacts.js';
import { startBroker, type TestBroker } from './broker.js';

/**
 * A small simulated fleet for the dashboard's browser tests and its screenshot script: Mosquitto (or the embedded
 * broker), the fleet service (`fleet serve` as a library call, on SQLite, with a token) and simulated devices that run
 * the agent's job and stream code, plus three signed versions of the sample CNN uploaded and verified by the service.
 * `cnn-1` (1.0.0) goes everywhere; a canary of 2.0.0 fails on half its devices and aborts. No vitest here: the
 * screenshot script uses it too.
 */
export const CHROMIUM = '/usr/bin/chromium';
export const CHROMIUM_ARGS = Object.freeze([
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--no-first-run',
  '--disable-quic',
  '--disable-sync',
]);
export const TOKEN = 'dashboard-test-token';
export const DEVICES = 12;
export const PREFIX = 'cam-';
export const V1 = { id: 'cnn-1', version: '1.0.0' } as const;
export const V2 = { id: 'cnn-2', version: '2.0.0', strategy: 'canary:4,bake=1s' } as const;
export const ABORT = 'failureType=ALL,thresholdPercentage=20,minNumberOfExecutedThings=2';
const SETTLE_MS = 90_000; // ms for the simulated fleet to register or a deployment to settle on a shared machine
const POLL_MS = 200; // ms between looks

/** The seeded outcomes, made plain: 2.0.0 fails on every other device, everything else succeeds. */
class DashboardSimulator extends Simulator {
  override outcomeOf(jobId: string, index: number): ReturnType<Simulator['outcomeOf']> {
    return jobId === V2.id && index % 2 === 0 ? 'fail' : 'succeed';
  }
}

export async function until<T>(what: string, look: () => Promise<T | undefined>, ms = SETTLE_MS): Promise<T> {
  const deadline = performance.now() + ms;
  for (;;) {
    const value = await look();
    if (value !== undefined) return value;
    if (performance.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(POLL_MS);
  }
}

/** Builds the dashboard's browser script with the project's own tsup config, into `dir`. */
export async function buildDashboardScript(dir: string): Promise<string> {
  const browser = (config as Options[]).find((c) => c.platform === 'browser');
  if (browser === undefined) throw new Error('tsup.config.ts has no browser entry');
  await build({ ...browser, outDir: dir, config: false, silent: true });
  const path = join(dir, 'dashboard', 'live.js');
  if (!existsSync(path)) throw new Error(`the browser build wrote no ${path}`);
  return path;
}

export interface DashboardFleet {
  readonly broker: TestBroker;
  readonly fleet: RunningFleet;
  readonly simulator: Simulator;
  readonly things: readonly string[];
  /** sha256 of each uploaded version. */
  readonly artifacts: Readonly<Record<string, string>>;
  api(method: string, path: string, body?: unknown): Promise<{ status: number; body: unknown }>;
  deployment(id: string): Promise<DeploymentView>;
  /** Polls a deployment until `done` holds. */
  settle(id: string, done: (d: DeploymentView) => boolean): Promise<DeploymentView>;
  close(): Promise<void>;
}

export async function startDashboardFleet(dir: string, scriptPath: string): Promise<DashboardFleet> {
  const broker = await startBroker();
  const keys = generateSigningKeys();
  const fleet = await serveFleet({
    brokerUrl: broker.urls.tcp,
    dataDir: join(dir, 'fleet'),
    trustedKeys: [keys.publicKeyPem],
    http: { port: 0, token: TOKEN, dashboard: { scriptPath, feed: { intervalMs: 200 } } },
    rollouts: { intervalMs: POLL_MS },
  });
  const artifacts: Record<string, string> = {};
  for (const version of ['1.0.0', '2.0.0', '3.0.0']) {
    const root = join(dir, `a-${version}`);
    await mkdir(root, { recursive: true });
    const sample = await sampleCnnArtifact(root, { signed: true, keys, version });
    const packed = await packArtifact(sample.dir, join(root, 'cnn.tar.gz'));
    artifacts[version] = (await fleet.service.operations.ingest(packed.path)).sha256;
  }
  const simulator = new DashboardSimulator({
    url: broker.urls.tcp,
    devices: DEVICES,
    prefix: PREFIX,
    seed: 5,
    targets: DEFAULT_TARGETS,
    offlineRate: 0,
    failRate: 0,
    guardrailFailRate: 0,
    dir: join(dir, 'simulated'),
    trustedKeys: [keys.publicKeyPem],
  });
  await simulator.start();
  const things = simulator.plan.map((d) => d.thing);
  const api: DashboardFleet['api'] = async (method, path, body) => {
    const response = await fetch(`${fleet.url}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${TOKEN}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    return { status: response.status, body: await response.json() };
  };
  const deployment = async (id: string) => (await api('GET', `/v1/deployments/${id}`)).body as DeploymentView;
  const settle: DashboardFleet['settle'] = (id, done) =>
    until(`deployment ${id}`, async () => {
      const d = await deployment(id);
      return done(d) ? d : undefined;
    });
  await until('the simulated devices to register', async () => {
    const known = await fleet.store.listThings(things);
    return known.length === things.length && known.every((t) => t.target.profile !== undefined) ? true : undefined;
  });
  return {
    broker,
    fleet,
    simulator,
    things,
    artifacts,
    api,
    deployment,
    settle,
    async close() {
      await simulator.stop();
      await fleet.close();
      await broker.stop();
    },
  };
}

/** 1.0.0 everywhere, all at once: every device then has a version to roll back to. */
export async function deployV1(f: DashboardFleet): Promise<DeploymentView> {
  const r = await f.api('POST', '/v1/deployments', {
    id: V1.id,
    artifacts: [f.artifacts[V1.version]],
    things: f.things,
  });
  if (r.status !== 201) throw new Error(`deploy ${V1.id}: ${JSON.stringify(r.body)}`);
  return f.settle(V1.id, (d) => d.state === 'COMPLETED');
}

/** The 2.0.0 canary whose failures trip the abort criteria. */
export async function deployV2(f: DashboardFleet): Promise<void> {
  const r = await f.api('POST', '/v1/deployments', {
    id: V2.id,
    artifacts: [f.artifacts[V2.version]],
    things: f.things,
    strategy: V2.strategy,
    then: 'all-at-once',
    seed: 'dashboard',
    abortConfig: parseAbort([ABORT]),
  });
  if (r.status !== 201) throw new Error(`deploy ${V2.id}: ${JSON.stringify(r.body)}`);
}

/** The aborted canary once its rollbacks have ended (no execution open, every switched device rolled back). */
export function abortedAndRolledBack(f: DashboardFleet): Promise<DeploymentView> {
  return f.settle(V2.id, (d) => {
    const open = d.executions.some((e) => e.status === 'QUEUED' || e.status === 'IN_PROGRESS');
    const switched = d.executions.filter((e) => e.status === 'SUCCEEDED').length;
    return d.state === 'ABORTED' && !open && (d.rollout?.rolledBack.length ?? 0) === switched;
  });
}

/** The scripted reporters' names: one whose monitor alarms, one calm. */
export const DRIFTING = 'lab-drift-1';
export const CALM = 'lab-calm-1';

/**
 * Two things that report serving state the simulated devices cannot (they run no model): drift scores, a shadow
 * comparison and a guardrail watch. A stand-in, named as such: each publishes one retained status message shaped
 * as the agent's (typed `AgentStatus`, so the registry parses exactly what an agent sends), with figures like those a
 * real agent reports for the sample MLP fed shifted inputs (test/device-agent/drift.test.ts and
 * test/fleet/service/rollout-drift.test.ts run the real agent). Resolves once the registry has both.
 */
export async function reportServingState(f: DashboardFleet): Promise<void> {
  const client = await connectAsync(f.broker.urls.tcp, { clientId: 'dashboard-reporter', protocolVersion: 4 });
  try {
    for (const [thing, shift] of [
      [DRIFTING, 1],
      [CALM, 0],
    ] as const) {
      const scores = Array.from({ length: 4 }, (_, i) => [
        { feature: `x[${i}]`, stat: 'psi' as const, value: 0.04 + shift * (0.9 - 0.15 * i), threshold: 0.25 },
        { feature: `x[${i}]`, stat: 'ks' as const, value: 0.03 + shift * (0.45 - 0.08 * i), threshold: 0.2 },
      ]).flat();
      const now = new Date().toISOString();
      const status: AgentStatus = {
        thing,
        connected: true,
        pid: process.pid,
        startedAt: now,
        updatedAt: now,
        uptimeSeconds: 600,
        host: { arch: 'x86_64', profile: 'x86_64:avx2', cpuProfile: 'x86_64:avx2', agentVersion: '0.1.0' },
        active: [
          { model: 'mlp', version: '1.0.0', variant: 'fp32', backend: 'native', role: 'production' },
          { model: 'mlp', version: '1.1.0', variant: 'int8', backend: 'native', role: 'shadow' },
        ],
        shadows: [
          {
            model: 'mlp',
            version: '1.1.0',
            percent: 25,
            compared: 412,
            shadowErrors: 0,
            agreement: 0.983,
            meanCosine: 0.9991,
            maxAbsDiff: 0.0123,
            nonFiniteMismatches: 0,
            productionP50Ms: 0.21,
            shadowP50Ms: 0.17,
          },
        ],
        guardrails: [
          {
            model: 'mlp',
            version: '1.0.0',
            requests: 1630,
            errors: 2,
            errorRate: 2 / 1630,
            p50Ms: 0.21,
            p99Ms: 0.94,
            elapsedSeconds: 240,
            windowSeconds: 600,
          },
        ],
        health: [
          { model: 'mlp', version: '1.0.0', requests: 1630, errors: 2, errorRate: 2 / 1630, p50Ms: 0.21, p99Ms: 0.94 },
        ],
        drift: [{ model: 'mlp', version: '1.0.0', samples: 1000, drifting: shift > 0, scores }],
        deployments: [],
        disk: { path: '/var/lib/outpost', freeBytes: 8e9, totalBytes: 16e9 },
        memory: { rssBytes: 90e6, systemFreeBytes: 1e9, systemTotalBytes: 4e9 },
        spool: { entries: 0, dropped: 0 },
      };
      await client.publishAsync(outpostTopics.status(thing), JSON.stringify(status), { qos: 1, retain: true });
    }
  } finally {
    await client.endAsync();
  }
  await until('the scripted reporters to register', async () => {
    const known = await f.fleet.store.listThings([DRIFTING, CALM]);
    return known.length === 2 && known.every((t) => t.drift.length > 0) ? true : undefined;
  });
}
