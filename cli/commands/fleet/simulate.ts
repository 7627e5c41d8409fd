import type { Command } from 'commander';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  DEFAULT_PREFIX,
  DEFAULT_SEED,
  DEFAULT_TARGETS,
  SIMULATOR_DEFAULTS,
  Simulator,
  readSharedTls,
  type SimulationSummary,
  type TargetShare,
} from '../../../device-agent/index.js';
import { collect, parsePositiveInt } from '../../options.js';
import { print, printJson, table } from '../../output.js';
import { ProgressReporter } from '../../progress.js';
import { parseDurationMs, parseRate, parseSeed, parseTargets } from './simulate-options.js';

interface SimulateOptions {
  devices: number;
  broker: string;
  prefix: string;
  failRate: number;
  offlineRate: number;
  guardrailFailRate: number;
  onlineAfter?: number;
  latency: number;
  bake: number;
  targets?: TargetShare[];
  seed: number;
  ca?: string;
  cert?: string;
  key?: string;
  trustKey?: string[];
  allowUnsigned?: boolean;
  dataDir?: string;
  duration?: number;
  connectConcurrency: number;
  json?: boolean;
}

/**
 * `outpost fleet simulate`: N simulated devices in this process (device-agent/simulator/) against a real broker, to
 * rehearse a rollout. Runs until SIGINT/SIGTERM (or `--duration`), then prints what the devices saw: a table, or
 * the summary object with `--json`. Progress on stderr.
 */
async function run(opts: SimulateOptions): Promise<void> {
  const dir = opts.dataDir ?? (await mkdtemp(join(tmpdir(), 'outpost-simulate-')));
  const tls = await readSharedTls(
    opts.ca === undefined && opts.cert === undefined && opts.key === undefined
      ? undefined
      : {
          ...(opts.ca === undefined ? {} : { ca: opts.ca }),
          ...(opts.cert === undefined ? {} : { cert: opts.cert }),
          ...(opts.key === undefined ? {} : { key: opts.key }),
        },
  );
  const progress = new ProgressReporter('simulate');
  let started = 0;
  const counts = { SUCCEEDED: 0, FAILED: 0, REJECTED: 0 };
  const simulator = new Simulator({
    url: opts.broker,
    devices: opts.devices,
    prefix: opts.prefix,
    seed: opts.seed,
    targets: opts.targets ?? DEFAULT_TARGETS,
    offlineRate: opts.offlineRate,
    failRate: opts.failRate,
    guardrailFailRate: opts.guardrailFailRate,
    dir,
    ...(tls === undefined ? {} : { tls }),
    trustedKeys: opts.trustKey ?? [],
    allowUnsigned: opts.allowUnsigned === true,
    latencyMs: opts.latency,
    bakeSeconds: opts.bake / 1000,
    ...(opts.onlineAfter === undefined ? {} : { onlineAfterMs: opts.onlineAfter }),
    connectConcurrency: opts.connectConcurrency,
    onProgress: (p) => {
      if (p.job === undefined) {
        started = p.online;
        progress.update('devices online', started, p.devices);
        return;
      }
      counts[p.job.status]++;
      progress.update('jobs ended', p.jobsEnded, 0);
    },
  });
  const stop = new AbortController();
  const onSignal = () => stop.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    await simulator.start();
    const offline = simulator.plan.filter((d) => d.offline).length;
    progress.line(
      `${started} of ${opts.devices} devices online (${offline} offline at start), prefix ${opts.prefix}, seed ${opts.seed}`,
    );
    if (!stop.signal.aborted)
      await sleep(opts.duration ?? 2 ** 31 - 1, undefined, { signal: stop.signal }).catch(() => undefined);
    // Stopped first: a device whose final update is in flight finishes it, so the summary has its outcome.
    await simulator.stop();
    progress.line(`jobs ended: ${counts.SUCCEEDED} succeeded, ${counts.FAILED} failed, ${counts.REJECTED} rejected`);
    progress.done();
    const summary = simulator.summary();
    if (opts.json === true) printJson(summary);
    else printSummary(summary);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await simulator.stop();
    if (opts.dataDir === undefined) await rm(dir, { recursive: true, force: true });
  }
}

function printSummary(s: SimulationSummary): void {
  const d = s.devices;
  print(
    `devices ${d.total}: ${d.online} online at exit, ${d.offlineAtStart} offline at start (${d.cameOnline} came online), ${d.failedToStart} failed to start`,
  );
  print(
    `targets ${Object.entries(s.targets)
      .map(([t, n]) => `${t}=${n}`)
      .join(' ')}`,
  );
  print('');
  if (s.jobs.length === 0) print('no jobs reached the devices');
  else
    print(
      table(
        ['JOB', 'MODEL', 'DEVICES', 'SUCCEEDED', 'FAILED', 'REJECTED', 'REFUSED', 'P50 S', 'MAX S', 'REASONS'],
        s.jobs.map((j) => [
          j.jobId,
          j.model,
          j.devices,
          j.succeeded,
          j.failed,
          j.rejected,
          j.refused,
          j.p50Seconds,
          j.maxSeconds,
          Object.entries(j.reasons)
            .map(([code, n]) => `${code}=${n}`)
            .join(' ') || '-',
        ]),
      ),
    );
  if (s.errors.length > 0) {
    print('');
    print(`${s.errors.length} device errors, first: ${s.errors[0]?.thing ?? ''}: ${s.errors[0]?.error ?? ''}`);
  }
}

export function register(fleet: Command): void {
  fleet
    .command('simulate')
    .description(
      'N simulated devices in one process (real Jobs client, download and verification) to rehearse rollouts',
    )
    .requiredOption('--devices <n>', 'how many devices', parsePositiveInt)
    .requiredOption('--broker <url>', 'MQTT broker (mqtt://, mqtts://, ws://, wss://)')
    .option('--prefix <prefix>', 'device names are <prefix>0 … <prefix>N-1', DEFAULT_PREFIX)
    .option('--fail-rate <r>', 'share of devices whose (simulated) self-test fails, per job', parseRate, 0)
    .option(
      '--guardrail-fail-rate <r>',
      'share that installs, then fails its bake (rolled back), per job',
      parseRate,
      0,
    )
    .option('--offline-rate <r>', 'share offline at start: registered, then dark', parseRate, 0)
    .option('--online-after <duration>', 'when the offline devices come online (default: never)', parseDurationMs)
    .option('--latency <duration>', 'time the stand-in install + self-test takes', parseDurationMs, 0)
    .option('--bake <duration>', 'bake when the job names none (its rollout.bakeSeconds)', parseDurationMs, 0)
    .option(
      '--targets <profile=share,…>',
      'target profiles and their shares (default x86_64:avx2=0.5,arm64:cortex-a72=0.5)',
      parseTargets,
    )
    .option('--seed <n>', 'seed of every choice (targets, offline devices, outcomes)', parseSeed, DEFAULT_SEED)
    .option('--ca <pem>', 'CA certificate to verify the broker')
    .option('--cert <pem>', 'client certificate (mTLS); {thing} in the path names one per device')
    .option('--key <pem>', 'client key (mTLS); {thing} in the path names one per device')
    .option('--trust-key <pem>', 'public key whose artifact signatures are trusted (repeatable)', collect)
    .option('--allow-unsigned', 'accept unsigned artifacts when no --trust-key is given (default: refuse)')
    .option('--data-dir <dir>', 'scratch space for downloads (default: a temporary directory, removed at exit)')
    .option('--duration <duration>', 'exit after this long (default: at SIGINT/SIGTERM)', parseDurationMs)
    .option(
      '--connect-concurrency <n>',
      'devices connecting at once',
      parsePositiveInt,
      SIMULATOR_DEFAULTS.connectConcurrency,
    )
    .option('--json', 'print the summary as JSON')
    .action(run);
}
