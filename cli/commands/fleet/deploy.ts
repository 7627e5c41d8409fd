import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { stderr } from 'node:process';
import type { Command } from 'commander';
import {
  type ArtifactView,
  type DeploymentView,
  parseAbort,
  parseRate,
  parseRetry,
  parseStrategy,
} from '../../../fleet/index.js';
import { openArtifact, packArtifact } from '../../../runtime/artifact/index.js';
import { OutpostError, fromFsError } from '../../../runtime/errors.js';
import { choice, collect, parsePositiveInt } from '../../options.js';
import { formatBytes, printJson } from '../../output.js';
import { type ClientOptions, FleetClient, addClientOptions, splitList } from './client.js';
import { printDeployment } from './print.js';
import { isSettled, waitForDeployment } from './status.js';

interface DeployOptions extends ClientOptions {
  group?: string;
  thing?: string[];
  jobId?: string;
  keepVersions?: number;
  notes?: string;
  timeoutMinutes?: number;
  canary?: number;
  shadow?: number;
  bakeSeconds?: number;
  wait?: boolean;
  strategy?: string;
  then?: string;
  seed?: string;
  rate?: string;
  abort?: string[];
  retry?: string[];
  layout?: 'files' | 'archive';
}

/** The rollout fields of the request (fleet/rollouts/), checked here first so a typo fails before any upload. */
function rolloutBody(opts: DeployOptions): Record<string, unknown> {
  if (opts.strategy !== undefined) parseStrategy(opts.strategy, opts.then);
  else if (opts.then !== undefined) throw new OutpostError('STRATEGY_INVALID', '--then follows a --strategy canary:…');
  return {
    ...(opts.strategy === undefined ? {} : { strategy: opts.strategy }),
    ...(opts.then === undefined ? {} : { then: opts.then }),
    ...(opts.seed === undefined ? {} : { seed: opts.seed }),
    ...(opts.rate === undefined ? {} : { jobExecutionsRolloutConfig: parseRate(opts.rate) }),
    ...(opts.abort === undefined ? {} : { abortConfig: parseAbort(opts.abort) }),
    ...(opts.retry === undefined ? {} : { jobExecutionsRetryConfig: parseRetry(opts.retry) }),
  };
}

/**
 * `outpost fleet deploy <artifact…> (--group g | --thing a,b)`: each artifact is checked here first (every file's
 * hash; nothing is uploaded unless all pass), packed if it is a directory, uploaded (the service verifies again,
 * signatures included, and stores it by sha256), then one deployment carries them all, one per target.
 */
async function run(artifacts: string[], opts: DeployOptions): Promise<void> {
  if ((opts.group === undefined) === (opts.thing === undefined)) {
    throw new OutpostError('INVALID_ARGUMENT', 'give either --group <name> or --thing a,b');
  }
  const waves = rolloutBody(opts);
  const client = await FleetClient.from(opts);
  const scratch = await mkdtemp(join(tmpdir(), 'outpost-fleet-deploy-'));
  try {
    const archives: string[] = [];
    for (const artifact of artifacts) archives.push(await checkAndPack(artifact, scratch));
    const stored: ArtifactView[] = [];
    for (const archive of archives) {
      const { size } = await stat(archive);
      if (opts.json !== true) stderr.write(`uploading ${basename(archive)} (${formatBytes(size)})\n`);
      stored.push(await client.upload<ArtifactView>('/v1/artifacts', archive));
    }
    const rollout =
      opts.canary !== undefined
        ? { mode: 'canary', percent: opts.canary }
        : opts.shadow !== undefined
          ? { mode: 'shadow', percent: opts.shadow }
          : opts.bakeSeconds !== undefined
            ? { mode: 'replace' }
            : undefined;
    let deployment = await client.post<DeploymentView>('/v1/deployments', {
      artifacts: stored.map((a) => a.sha256),
      ...(opts.group === undefined ? { things: splitList(opts.thing) } : { group: opts.group }),
      ...(opts.jobId === undefined ? {} : { id: opts.jobId }),
      ...waves,
      options: {
        ...(rollout === undefined
          ? {}
          : { rollout: { ...rollout, ...(opts.bakeSeconds === undefined ? {} : { bakeSeconds: opts.bakeSeconds }) } }),
        ...(opts.keepVersions === undefined ? {} : { keepVersions: opts.keepVersions }),
        ...(opts.notes === undefined ? {} : { notes: opts.notes }),
        ...(opts.layout === undefined ? {} : { layout: opts.layout }),
        ...(opts.timeoutMinutes === undefined ? {} : { inProgressTimeoutInMinutes: opts.timeoutMinutes }),
      },
    });
    if (opts.wait === true) deployment = await waitForDeployment(client, deployment.id, opts.json !== true);
    if (opts.json === true) printJson(deployment);
    else printDeployment(deployment);
    if (
      opts.wait === true &&
      isSettled(deployment) &&
      deployment.jobProcessDetails.numberOfSucceededThings !== deployment.executions.length
    ) {
      throw new OutpostError('DEPLOYMENT_FAILED', `deployment ${deployment.id}: not every thing SUCCEEDED`, {
        details: { id: deployment.id },
      });
    }
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

/** Verifies (hashes) and returns a .tar.gz to upload: an archive as it is, a directory packed deterministically. */
async function checkAndPack(artifact: string, scratch: string): Promise<string> {
  const isDirectory = await stat(artifact).then(
    (s) => s.isDirectory(),
    (error: unknown) => Promise.reject(fromFsError(error, artifact, 'read')),
  );
  const opened = await openArtifact(artifact, { workDir: scratch });
  try {
    if (!isDirectory) return artifact;
    const { name, version, target } = opened.manifest;
    const out = join(scratch, `${name}-${version}-${target.profile.replace(/[^A-Za-z0-9_-]/g, '_')}.tar.gz`);
    return (await packArtifact(opened.dir, out)).path;
  } finally {
    await opened.dispose();
  }
}

export function register(fleet: Command): void {
  addClientOptions(
    fleet.command('deploy').description('deploy one model version (one artifact per target) to a group or things'),
  )
    .argument('<artifact...>', 'artifact directories or .tar.gz files: the same model version for different targets')
    .option('--group <name>', 'deploy to a thing group')
    .option('--thing <names>', 'deploy to these things, comma-separated (repeatable)', collect)
    .option('--job-id <id>', 'the deployment id (default <model>-<version>-<random>)')
    .option('--keep-versions <n>', 'installed versions each device keeps', parsePositiveInt)
    .option('--notes <text>', 'shown in `outpost agent status`')
    .option('--timeout-minutes <n>', 'an execution IN_PROGRESS this long becomes TIMED_OUT', parsePositiveInt)
    .option('--canary <percent>', 'on each device, serve the new version beside the current one', Number)
    .option('--shadow <percent>', 'on each device, mirror traffic to the new version without answering', Number)
    .option('--bake-seconds <s>', "each device's guardrail window for this deployment", Number)
    .option(
      '--strategy <s>',
      'rollout waves: all-at-once (default), canary:<N|P%>[,bake=<duration>], linear:<P%>,every=<duration> (docs/rollouts.md)',
    )
    .option('--then <s>', 'after a canary: linear:<P%>,every=<duration> (or all-at-once)')
    .option('--seed <text>', 'seed of the wave membership (default the deployment id)')
    .option(
      '--rate <settings>',
      'IoT Jobs rollout rate: maximumPerMinute=N, or baseRatePerMinute=N,incrementFactor=F,numberOfNotifiedThings|numberOfSucceededThings=N[,maximumPerMinute=N]',
    )
    .option(
      '--abort <criteria>',
      'IoT Jobs abort criteria (repeatable): failureType=FAILED|REJECTED|TIMED_OUT|ALL,thresholdPercentage=P,minNumberOfExecutedThings=N',
      collect,
    )
    .option(
      '--retry <criteria>',
      'IoT Jobs retries (repeatable): failureType=FAILED|TIMED_OUT|ALL,numberOfRetries=0..10',
      collect,
    )
    .option(
      '--layout <layout>',
      'stream layout: files (default: each device fetches the manifest, then only the variants it runs) or archive (one .tar.gz)',
      choice(['files', 'archive'] as const),
    )
    .option('--wait', 'wait until every execution ended; exit non-zero unless all SUCCEEDED')
    .action(run);
}
