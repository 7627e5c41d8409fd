import { InvalidArgumentError, type Command } from 'commander';
import { readTuneChoices } from '../../runtime/tuning/index.js';
import { OutpostError } from '../../runtime/errors.js';
import { logger } from '../../runtime/log.js';
import type { Model } from '../../runtime/model/index.js';
import {
  ServerMetrics,
  StaticRepository,
  DEFAULT_MAX_RESPONSE,
  DEFAULT_MAX_BODY,
  InferenceServer,
  StaticPipelines,
} from '../../runtime/server/index.js';
import { isPipelineArtifact, openPipeline, type Pipeline } from '../../runtime/pipeline/index.js';
import { parseNonNegativeInt, parsePositiveInt } from '../options.js';
import { print, printJson } from '../output.js';
import {
  SERVE_CAPTURE_DEFAULTS,
  captureWriter,
  parseVersionValue,
  placeServed,
  type CaptureFlags,
  type TrafficFlags,
} from '../serve-traffic.js';
import { loadAll, readToken, schedulerFor } from '../serving.js';
import { addModelOptions, loadOptions, type ModelOptions } from './shared.js';

interface ServeOptions extends ModelOptions, TrafficFlags, CaptureFlags {
  host: string;
  port: number;
  socket?: string;
  token?: string;
  tokenFile?: string;
  concurrency?: number;
  maxQueue?: number;
  maxBatchSize?: number;
  maxQueueDelayMs?: number;
  maxBodyBytes: number;
  maxResponseBytes: number;
  requireSignature?: boolean;
  tuning?: string;
}

function parseDelayMs(value: string): number {
  const ms = Number(value);
  if (value.trim() === '' || !Number.isFinite(ms) || ms < 0)
    throw new InvalidArgumentError(`"${value}" is not a delay in ms ≥ 0`);
  return ms;
}

function parsePercent(value: string): number {
  const percent = Number(value);
  if (value.trim() === '' || !(percent >= 0 && percent <= 100))
    throw new InvalidArgumentError(`"${value}" is not a percent within 0–100`);
  return percent;
}

const log = logger('cli.serve');

/** Hosts only this machine reaches: no token needed there. */
const LOOPBACK: ReadonlySet<string> = new Set(['127.0.0.1', '::1', 'localhost']);

function describe(model: Model) {
  return { name: model.name, version: model.version, variant: model.variant.id, backend: model.backend };
}

/**
 * `outpost serve <artifact…>`: the local inference server (runtime/server/README.md) over the given artifacts, with
 * Prometheus metrics at /metrics. Runs until SIGINT/SIGTERM, then stops accepting, lets in-flight requests finish,
 * releases the models and exits 0.
 */
async function serve(paths: string[], opts: ServeOptions): Promise<void> {
  if (opts.maxQueueDelayMs !== undefined && opts.maxBatchSize === undefined) {
    throw new OutpostError('INVALID_ARGUMENT', '--max-queue-delay-ms needs --max-batch-size (it tunes batching)');
  }
  const trustKeys = opts.trustKey ?? [];
  if (opts.requireSignature === true && trustKeys.length === 0) {
    throw new OutpostError('INVALID_ARGUMENT', '--require-signature needs --trust-key: no signature could be trusted');
  }
  const requireSignature = opts.requireSignature === true || trustKeys.length > 0;
  const token = await readToken(opts);
  const tuning = opts.tuning === undefined ? undefined : await readTuneChoices(opts.tuning);

  const metrics = new ServerMetrics();
  const capture = await captureWriter(opts);
  const captured = capture === undefined ? [] : [capture.observer];
  const scheduler = schedulerFor(opts, tuning, metrics.batches);
  const repository = new StaticRepository({ scheduler, observers: [metrics.observer, ...captured] });
  metrics.watch(repository);
  // Pipeline artifacts are served beside the models, one endpoint each (docs/pipelines.md, "Serving").
  const kinds = await Promise.all(paths.map((p) => isPipelineArtifact(p)));
  const pipelines = new StaticPipelines({ observers: captured });
  metrics.pipelines.watch(() => pipelines.services());
  const opened: Pipeline[] = [];
  const models = await loadAll(
    paths.filter((_, i) => kinds[i] !== true),
    { ...loadOptions(opts), requireSignature },
    tuning,
  );
  let server: InferenceServer | undefined;
  try {
    for (const path of paths.filter((_, i) => kinds[i] === true)) {
      const pipeline = await openPipeline(path, {
        trustedKeys: trustKeys,
        requireSignature,
        ...(opts.backend === undefined ? {} : { backend: opts.backend }),
        ...(opts.threads === undefined ? {} : { threads: opts.threads }),
      });
      opened.push(pipeline);
    }
    await placeServed(opts, models, opened, { repository, pipelines });
    server = new InferenceServer({
      repository,
      host: opts.host,
      port: opts.port,
      ...(opts.socket === undefined ? {} : { socket: opts.socket }),
      ...(token === undefined ? {} : { token }),
      maxBodyBytes: opts.maxBodyBytes,
      maxResponseBytes: opts.maxResponseBytes,
      metrics: () => metrics.text(),
      pipelines,
      pipelineMetrics: metrics.pipelines,
    });
    const { url } = await server.listen();
    if (token === undefined && opts.socket === undefined && !LOOPBACK.has(opts.host)) {
      log.warn({ url }, 'serving on a network address without a token: anyone who can reach it can run the models');
    }
    const role = (x: { name: string; version: string }) => {
      const shadow = opts.shadow?.get(`${x.name}@${x.version}`);
      return shadow === undefined
        ? { role: 'production', weight: opts.weight?.get(`${x.name}@${x.version}`) ?? 1 }
        : { role: 'shadow', percent: shadow };
    };
    const traffic = (r: ReturnType<typeof role>) =>
      r.role === 'shadow' ? `  shadow ${r.percent}%` : r.weight === 1 ? '' : `  weight ${r.weight}`;
    const served = opened.map((p) => ({
      name: p.name,
      version: p.version,
      steps: p.steps.map((s) => s.id),
      ...role(p),
    }));
    if (opts.json === true)
      printJson({
        url,
        auth: token !== undefined,
        models: models.map((m) => ({ ...describe(m), ...role(m) })),
        pipelines: served,
        ...(capture === undefined ? {} : { capture: opts.capture }),
      });
    else {
      print(`outpost serve: listening on ${url}${token === undefined ? '' : ' (bearer token required)'}`);
      for (const m of models)
        print(`  ${m.name}@${m.version}  variant ${m.variant.id}  backend ${m.backend}${traffic(role(m))}`);
      for (const p of served) print(`  ${p.name}@${p.version}  pipeline  ${p.steps.join(' → ')}${traffic(p)}`);
      if (capture !== undefined) print(`data capture: ${opts.capturePercent}% of calls to ${opts.capture}`);
      print('Open Inference Protocol at /v2, Prometheus metrics at /metrics; Ctrl-C stops.');
    }
    const signal = await new Promise<NodeJS.Signals>((resolve) => {
      process.once('SIGINT', resolve);
      process.once('SIGTERM', resolve);
    });
    await server.close();
    if (opts.json !== true) print(`stopped (${signal})`);
  } finally {
    await server?.close();
    await repository.close();
    await Promise.allSettled(models.map((m) => m.release()));
    await Promise.allSettled(opened.map((p) => p.release()));
    await capture?.close();
  }
}

export function register(program: Command): void {
  addModelOptions(
    program
      .command('serve')
      .description('serve artifacts over the Open Inference Protocol (KServe v2 REST) with metrics')
      .argument('<artifact...>', 'artifact directories or .tar.gz, or .onnx/.ort files; versions of one name share it')
      .option('--host <address>', 'address to listen on (0.0.0.0: every interface)', '127.0.0.1')
      .option('--port <port>', 'TCP port (0: any free port)', parseNonNegativeInt, 8080)
      .option('--socket <path>', 'listen on a unix socket instead of TCP')
      .option('--token <token>', 'require "Authorization: Bearer <token>" (health checks stay open)')
      .option('--token-file <file>', 'read the token from the first line of a file (or set $OUTPOST_TOKEN)')
      .option('--concurrency <n>', 'requests (or batches) run at once per model version', parsePositiveInt)
      .option('--max-queue <n>', 'requests (rows when batching) waiting per version before 503', parsePositiveInt)
      .option(
        '--max-batch-size <rows>',
        'batch queued requests of batchable models, up to this many rows',
        parsePositiveInt,
      )
      .option(
        '--max-queue-delay-ms <ms>',
        'longest a request waits for a batch to fill (default 0: batches form only while the model is busy)',
        parseDelayMs,
      )
      .option('--max-body-bytes <n>', 'largest request body; larger ones get 413', parsePositiveInt, DEFAULT_MAX_BODY)
      .option(
        '--max-response-bytes <n>',
        'largest answer; larger ones get 400 RESPONSE_TOO_LARGE',
        parsePositiveInt,
        DEFAULT_MAX_RESPONSE,
      )
      .option('--require-signature', 'refuse artifacts not signed by a --trust-key (implied by --trust-key)')
      .option('--tuning <file>', '`outpost tune --out` file: per model variant, backend, threads and batching')
      .option(
        '--weight <name@version=w>',
        'traffic weight of a version (a canary: ocr@2.0.0=10 beside ocr@1.0.0=90); default 1 each (repeatable)',
        parseVersionValue('weight'),
      )
      .option(
        '--shadow <name@version=percent>',
        'serve that version as shadow: mirror this percent of unnamed calls to it, compare, never answer (repeatable)',
        parseVersionValue('percent', 100),
      )
      .option('--capture <dir>', 'data capture of production calls (inputs, final outputs, latency) to JSON lines here')
      .option('--capture-percent <p>', 'share of calls captured', parsePercent, SERVE_CAPTURE_DEFAULTS.samplePercent)
      .option('--capture-key <file>', 'encrypt captures at rest with this AES-256 key (see outpost capture read)'),
  ).action(serve);
}
