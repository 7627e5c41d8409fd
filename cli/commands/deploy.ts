import { InvalidArgumentError, type Command } from 'commander';
import { type DeployEvent, type DeployOptions, type DeployResult, deploy, type FleetTls } from '../../fleet/index.js';
import { OutpostError } from '../../runtime/errors.js';
import { collect, parseNonNegativeInt, parsePositiveInt } from '../options.js';
import { formatBytes, print, printJson, table } from '../output.js';
import { ProgressReporter } from '../progress.js';

interface DeployCliOptions {
  thing: string[];
  broker: string;
  ca?: string;
  cert?: string;
  key?: string;
  jobId?: string;
  wait?: boolean;
  timeout?: number;
  trustKey?: string[];
  signKey?: string;
  canary?: number;
  shadow?: number;
  bakeSeconds?: number;
  layout?: 'files' | 'archive';
  json?: boolean;
}

/** The job document's `rollout` from the flags; absent when none is given (the agent's defaults apply). */
function rolloutOf(opts: DeployCliOptions): Pick<DeployOptions, 'rollout'> {
  const bake = opts.bakeSeconds === undefined ? {} : { bakeSeconds: opts.bakeSeconds };
  if (opts.canary !== undefined) return { rollout: { mode: 'canary', percent: opts.canary, ...bake } };
  if (opts.shadow !== undefined) return { rollout: { mode: 'shadow', percent: opts.shadow, ...bake } };
  return opts.bakeSeconds === undefined ? {} : { rollout: { mode: 'replace', ...bake } };
}

/**
 * `outpost deploy <artifact> --thing a,b --broker <url>`: verifies and packs the artifact, serves it as an MQTT-based
 * file delivery stream and queues an IoT Jobs execution per thing (fleet/deploy.ts). With --wait, exits when every
 * execution is terminal or --timeout passes; without, serves until every execution is terminal or Ctrl-C. Either way
 * it prints each thing's status and exits non-zero unless every thing SUCCEEDED.
 */
async function run(artifact: string, opts: DeployCliOptions): Promise<void> {
  const things = opts.thing
    .flatMap((t) => t.split(','))
    .map((t) => t.trim())
    .filter((t) => t !== '');
  const tls: FleetTls | undefined =
    opts.ca === undefined && opts.cert === undefined && opts.key === undefined
      ? undefined
      : { ca: opts.ca, cert: opts.cert, key: opts.key };
  const reporter = new ProgressReporter('deploy', { format: formatBytes });
  const options: DeployOptions = {
    artifact,
    things,
    brokerUrl: opts.broker,
    ...(tls === undefined ? {} : { tls }),
    ...(opts.jobId === undefined ? {} : { jobId: opts.jobId }),
    ...(opts.trustKey === undefined ? {} : { trustedKeys: opts.trustKey }),
    ...(opts.signKey === undefined ? {} : { signingKey: opts.signKey }),
    ...(opts.timeout === undefined ? {} : { timeoutMs: opts.timeout * 1000 }),
    ...(opts.layout === undefined ? {} : { layout: opts.layout }),
    ...rolloutOf(opts),
    // Progress and status changes go to stderr whatever the output mode (--json is stdout), not under --quiet.
    onEvent: (event) => progress(reporter, event),
  };
  let result: DeployResult;
  if (opts.wait === true) {
    result = await deploy({ ...options, wait: true });
  } else {
    const deployment = await deploy({ ...options, wait: false });
    reporter.line(`serving job ${deployment.jobId} to ${things.length} thing(s); Ctrl-C to stop`);
    const signal = interrupted();
    await Promise.race([deployment.settled(), signal.promise]);
    signal.dispose();
    result = await deployment.close();
  }
  reporter.done();
  report(result, opts.json === true);
}

function progress(reporter: ProgressReporter, event: DeployEvent): void {
  if (event.type === 'ready') {
    const { model, artifact } = event.document;
    reporter.line(
      `job ${event.jobId}: ${model.name} ${model.version}, ${artifact.size} bytes, stream ${artifact.streamId}`,
    );
    return;
  }
  if (event.type === 'download') {
    reporter.update(`download ${event.thing}`, Math.min(event.bytes, event.total), event.total);
    return;
  }
  const from = event.previous === undefined ? '' : `${event.previous} → `;
  reporter.line(`${event.thing}: ${from}${event.status}${details(event.statusDetails, ' (', ')')}`);
}

function report(result: DeployResult, json: boolean): void {
  if (json) {
    const only = result.things.length === 1 ? result.things[0] : undefined;
    // bytesFetched: what each device reported it fetched (statusDetails carries it as a string).
    const things = result.things.map((t) => {
      const fetched = Number(t.statusDetails.bytesFetched);
      return Number.isFinite(fetched) && t.statusDetails.bytesFetched !== undefined
        ? { ...t, bytesFetched: fetched }
        : t;
    });
    printJson({ jobId: result.jobId, ...(only === undefined ? {} : { status: only.status }), things });
  } else {
    print(`job ${result.jobId}`);
    print(
      table(
        ['thing', 'status', 'details'],
        result.things.map((t) => [t.thing, t.status, details(t.statusDetails)]),
      ),
    );
  }
  const failed = result.things.filter((t) => t.status !== 'SUCCEEDED');
  if (failed.length > 0) {
    throw new OutpostError(
      'DEPLOYMENT_FAILED',
      `job ${result.jobId}: ${failed.length} of ${result.things.length} thing(s) did not succeed: ` +
        failed.map((t) => `${t.thing} ${t.status}`).join(', '),
      { details: { jobId: result.jobId, failed: failed.map((t) => t.thing) } },
    );
  }
}

function details(statusDetails: Readonly<Record<string, string>>, before = '', after = ''): string {
  const pairs = Object.entries(statusDetails).map(([k, v]) => `${k}=${v}`);
  return pairs.length === 0 ? '' : `${before}${pairs.join('; ')}${after}`;
}

function parseLayout(value: string): 'files' | 'archive' {
  if (value !== 'files' && value !== 'archive') throw new InvalidArgumentError(`"${value}" is not files or archive`);
  return value;
}

function parsePercent(value: string): number {
  const n = Number(value);
  if (!(n >= 0 && n <= 100)) throw new InvalidArgumentError(`"${value}" is not a percentage (0–100)`);
  return n;
}

/** Resolves on the first SIGINT or SIGTERM (taking the signal, so the process does not die mid-cleanup). */
function interrupted(): { promise: Promise<void>; dispose: () => void } {
  let stop = (): void => undefined;
  const promise = new Promise<void>((resolve) => {
    stop = () => {
      dispose();
      resolve();
    };
  });
  const dispose = (): void => {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  return { promise, dispose };
}

export function register(program: Command): void {
  program
    .command('deploy')
    .description(
      'deliver an artifact to things over MQTT (AWS IoT Jobs + MQTT-based file delivery) and report each status',
    )
    .argument('<artifact>', 'artifact directory or .tar.gz, or a plain .onnx/.ort model (wrapped into an artifact)')
    .requiredOption('--thing <names>', 'thing name(s), comma-separated (repeatable)', collect)
    .requiredOption('--broker <url>', 'broker URL: mqtt://host:1883, mqtts://host:8883, ws://…')
    .option('--ca <pem>', 'CA certificate (file) that signed the broker certificate')
    .option('--cert <pem>', 'client certificate (file) for mutual TLS')
    .option('--key <pem>', 'client private key (file) for mutual TLS')
    .option(
      '--job-id <id>',
      'job id, also the stream id (1–64 of a-z A-Z 0-9 _ -); default deploy-<model>-<version>-<hex>',
    )
    .option('--wait', 'wait for every thing to finish, at most --timeout (default: serve until they finish or Ctrl-C)')
    .option(
      '--timeout <seconds>',
      'with --wait: give up after this long (IN_PROGRESS → TIMED_OUT, QUEUED → CANCELED)',
      parsePositiveInt,
    )
    .option('--trust-key <pem>', 'public key whose signature the artifact must carry (repeatable)', collect)
    .option('--sign-key <pem>', 'for a plain .onnx/.ort: sign the artifact it is wrapped into with this ed25519 key')
    .option('--canary <percent>', 'serve the new version to this % of requests beside the current one', parsePercent)
    .option(
      '--shadow <percent>',
      'mirror this % of requests to the new version and only compare (see agent status)',
      parsePercent,
    )
    .option(
      '--bake-seconds <s>',
      "watch the new version this long under the agents' guardrails before it succeeds (0: no bake)",
      parseNonNegativeInt,
    )
    .option(
      '--layout <layout>',
      'stream layout: files (each device fetches the manifest, then only its variants) or archive (one .tar.gz)',
      parseLayout,
      'files',
    )
    .option(
      '--json',
      'print JSON: { jobId, status (one thing), things: [{ thing, status, bytesFetched, statusDetails }] }',
    )
    .action(run);
}
