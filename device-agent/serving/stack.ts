import { join } from 'node:path';
import { VerdictFile } from '../../runtime/artifact/index.js';
import { type TuneChoiceFile, readTuneChoices } from '../../runtime/tuning/index.js';
import { logger } from '../../runtime/log.js';
import {
  CaptureWriter,
  readCaptureKey,
  ServerMetrics,
  plannedScheduler,
  type ServiceObserver,
  type ShadowReport,
  type WindowStats,
} from '../../runtime/server/index.js';
import type { Model } from '../../runtime/model/index.js';
import type { Pipeline } from '../../runtime/pipeline/index.js';
import type { AgentConfig } from '../config.js';
import { Guardrails } from '../deployment/guardrails.js';
import type { DriftEvent, DriftMonitor } from '../../runtime/monitor/index.js';
import { ActiveModels } from './active-models.js';
import { PIPELINE_SELECTION, pipelineBackend } from './active-pipelines.js';
import { createDriftWatch, driftStatus, followServedModels } from './drift.js';
import type { AgentStatus } from '../storage/status.js';

const log = logger('agent.serving');

/** Everything that serves and watches the agent's models; built once at start from the config. */
export interface ServingStack {
  readonly models: ActiveModels;
  readonly metrics: ServerMetrics;
  /** Alarms after deployments; absent unless `guardrails` is configured. */
  readonly guardrails: Guardrails | undefined;
  /** Data capture; absent unless `capture.samplePercent` > 0. */
  readonly capture: CaptureWriter | undefined;
  /** Drift against each served version's baseline; absent when `monitor.enabled` is false. */
  readonly drift: DriftMonitor | undefined;
  /** `outpost tune` choices by model name. */
  readonly tuning: ReadonlyMap<string, TuneChoiceFile>;
  /** Installed files hashed and found matching, while unchanged: a boot re-hashes only what changed (verified.json). */
  readonly verdicts: VerdictFile;
}

/**
 * `extra` observers see every production call too (the agent marks its status stale with one); `onDrift` hears the
 * monitor's alarms (the agent spools them as events).
 */
export async function createServingStack(
  config: AgentConfig,
  extra: readonly ServiceObserver[] = [],
  onDrift: (event: DriftEvent) => Promise<void> = () => Promise.resolve(),
): Promise<ServingStack> {
  const tuning = config.tuning === undefined ? new Map<string, TuneChoiceFile>() : await readTuneChoices(config.tuning);
  const metrics = new ServerMetrics();
  const guardrails = config.guardrails === undefined ? undefined : new Guardrails(config.guardrails);
  const { capture: c } = config;
  const capture =
    c.samplePercent > 0
      ? new CaptureWriter({
          dir: join(config.dataDir, 'capture'),
          samplePercent: c.samplePercent,
          maxFileBytes: c.maxFileBytes,
          maxTotalBytes: c.maxTotalBytes,
          tensors: c.tensors,
          ...(c.encryptionKeyFile === undefined ? {} : { encryptionKey: await readCaptureKey(c.encryptionKeyFile) }),
        })
      : undefined;
  await capture?.open();
  const drift = createDriftWatch(config.monitor, capture, onDrift);
  const observers: ServiceObserver[] = [metrics.observer];
  if (guardrails !== undefined) {
    observers.push(guardrails.observer);
    // A pipeline bakes under the same guardrails: its calls reach them through its metrics (one per request).
    metrics.pipelines.onCall(({ pipeline, version, ms, error }) =>
      guardrails.observer.onInference({
        name: pipeline,
        version,
        ms,
        feeds: {},
        ...(error === undefined ? {} : { error }),
      }),
    );
  }
  if (capture !== undefined) observers.push(capture.observer);
  if (drift !== undefined) observers.push(drift.observer);
  observers.push(...extra);
  const { concurrency, maxQueue, batching } = config.serving;
  const scheduler = plannedScheduler({
    direct: { concurrency, maxQueue },
    batchConcurrency: concurrency,
    ...(batching === undefined ? {} : { batching }),
    perModel: new Map([...tuning].map(([name, choice]) => [name, choice.batch])),
    observer: metrics.batches,
  });
  // A pipeline's calls reach metrics and guardrails through PipelineMetrics (above); its service's observers are the
  // ones that take a pipeline's input and final outputs as they are: capture and the agent's own.
  const pipelineObservers = [...(capture === undefined ? [] : [capture.observer]), ...extra];
  const models = new ActiveModels({ scheduler, observers }, { observers: pipelineObservers });
  metrics.watch(models);
  metrics.pipelines.watch(() => models.pipelines.services());
  if (drift !== undefined) {
    followServedModels(drift, models);
    metrics.watchDrift(drift);
  }
  if (tuning.size > 0) log.info({ models: [...tuning.keys()], file: config.tuning }, 'tuned serving configuration');
  const verdicts = await VerdictFile.open(join(config.dataDir, 'verified.json'), join(config.dataDir, 'verified.key'));
  return { models, metrics, guardrails, capture, drift, tuning, verdicts };
}

/** One name's serving as status reports it, a model's or a pipeline's alike. */
interface Served {
  readonly name: string;
  readonly production: readonly Described[];
  readonly weights: readonly number[];
  readonly shadow: Described | undefined;
  readonly report: ShadowReport | undefined;
  readonly window: (version: string) => WindowStats;
}

type Described = Omit<AgentStatus['active'][number], 'role' | 'trafficPercent'>;

function served(stack: ServingStack): Served[] {
  const model = (m: Model): Described => ({
    model: m.name,
    version: m.version,
    variant: m.variant.id,
    backend: m.backend,
  });
  const pipeline = (p: Pipeline): Described => ({
    model: p.name,
    version: p.version,
    variant: PIPELINE_SELECTION,
    backend: pipelineBackend(p),
  });
  const models = stack.models.services().map((s) => {
    const shadow = s.shadowModel();
    return {
      name: s.name,
      production: s.versions().map(model),
      weights: s.weights(),
      shadow: shadow === undefined ? undefined : model(shadow),
      report: s.shadowReport(),
      window: (version: string) => stack.metrics.windowStats(s.name, version),
    };
  });
  const pipelines = stack.models.pipelines.services().map((s) => {
    const shadow = s.shadowPipeline();
    return {
      name: s.name,
      production: s.versions().map(pipeline),
      weights: s.weights(),
      shadow: shadow === undefined ? undefined : pipeline(shadow),
      report: s.shadowReport(),
      window: (version: string) => stack.metrics.pipelines.windowStats(s.name, version),
    };
  });
  return [...models, ...pipelines];
}

/**
 * What the stack serves and watches, as `agent status` and the status message show it: models and pipelines alike
 * (production versions with their traffic share, the shadow and its comparison, guardrail watches, health).
 */
export function servingStatus(
  stack: ServingStack,
): Pick<AgentStatus, 'active' | 'shadows' | 'guardrails' | 'capture' | 'health' | 'drift'> {
  const all = served(stack);
  const active = all.flatMap((s) => {
    const total = s.weights.reduce((a, b) => a + b, 0);
    const production = s.production.map((d, i) => ({
      ...d,
      role: 'production' as const,
      ...(s.production.length > 1 ? { trafficPercent: ((s.weights[i] ?? 0) / total) * 100 } : {}),
    }));
    return s.shadow === undefined ? production : [...production, { ...s.shadow, role: 'shadow' as const }];
  });
  const shadows = all.flatMap((s) => {
    if (s.report === undefined) return [];
    const { agreement, exactMatch, meanCosine, productionP50Ms, shadowP50Ms, ...rest } = s.report;
    return [
      {
        model: s.name,
        ...rest,
        ...(agreement === undefined ? {} : { agreement }),
        ...(exactMatch === undefined ? {} : { exactMatch }),
        ...(meanCosine === undefined ? {} : { meanCosine }),
        ...(productionP50Ms === undefined ? {} : { productionP50Ms }),
        ...(shadowP50Ms === undefined ? {} : { shadowP50Ms }),
      },
    ];
  });
  const { guardrails, capture } = stack;
  const watched = all.flatMap((s) => {
    const report = guardrails?.report(s.name);
    if (report === undefined) return [];
    const { p50Ms, p99Ms, ...rest } = report;
    return [{ ...rest, ...(p50Ms === undefined ? {} : { p50Ms }), ...(p99Ms === undefined ? {} : { p99Ms }) }];
  });
  const health = all.flatMap((s) =>
    s.production.map(({ version }) => {
      const w = s.window(version);
      return {
        model: s.name,
        version,
        requests: w.requests,
        errors: w.errors,
        errorRate: w.errorRate,
        ...(w.p50Ms === undefined ? {} : { p50Ms: w.p50Ms }),
        ...(w.p99Ms === undefined ? {} : { p99Ms: w.p99Ms }),
      };
    }),
  );
  return {
    active,
    shadows,
    guardrails: watched,
    health,
    ...(capture === undefined ? {} : { capture: { ...capture.stats() } }),
    ...(stack.drift === undefined ? {} : { drift: stack.drift.reports().map(driftStatus) }),
  };
}
