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
} from '../../runtime/server/index.js';
import type { Model } from '../../runtime/model/index.js';
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
  const models = new ActiveModels({ scheduler, observers });
  metrics.watch(models);
  if (drift !== undefined) {
    followServedModels(drift, models);
    metrics.watchDrift(drift);
  }
  if (tuning.size > 0) log.info({ models: [...tuning.keys()], file: config.tuning }, 'tuned serving configuration');
  const verdicts = await VerdictFile.open(join(config.dataDir, 'verified.json'), join(config.dataDir, 'verified.key'));
  return { models, metrics, guardrails, capture, drift, tuning, verdicts };
}

/** What the stack serves and watches, as `agent status` and the status message show it. */
export function servingStatus(
  stack: ServingStack,
): Pick<AgentStatus, 'active' | 'shadows' | 'guardrails' | 'capture' | 'health' | 'drift'> {
  const services = stack.models.services();
  const describe = (m: Model) => ({ model: m.name, version: m.version, variant: m.variant.id, backend: m.backend });
  const pipelines = stack.models.pipelines.list().map((p) => ({
    model: p.name,
    version: p.version,
    variant: PIPELINE_SELECTION,
    backend: pipelineBackend(p),
    role: 'production' as const,
  }));
  const active = services.flatMap((service) => {
    const versions = service.versions();
    const weights = service.weights();
    const total = weights.reduce((a, b) => a + b, 0);
    const production = versions.map((m, i) => ({
      ...describe(m),
      role: 'production' as const,
      ...(versions.length > 1 ? { trafficPercent: ((weights[i] ?? 0) / total) * 100 } : {}),
    }));
    const shadow = service.shadowModel();
    return shadow === undefined ? production : [...production, { ...describe(shadow), role: 'shadow' as const }];
  });
  const shadows = services.flatMap((service) => {
    const report = service.shadowReport();
    if (report === undefined) return [];
    const { agreement, meanCosine, productionP50Ms, shadowP50Ms, ...rest } = report;
    return [
      {
        model: service.name,
        ...rest,
        ...(agreement === undefined ? {} : { agreement }),
        ...(meanCosine === undefined ? {} : { meanCosine }),
        ...(productionP50Ms === undefined ? {} : { productionP50Ms }),
        ...(shadowP50Ms === undefined ? {} : { shadowP50Ms }),
      },
    ];
  });
  const { guardrails, capture } = stack;
  const watched = services.flatMap((service) => {
    const report = guardrails?.report(service.name);
    if (report === undefined) return [];
    const { p50Ms, p99Ms, ...rest } = report;
    return [{ ...rest, ...(p50Ms === undefined ? {} : { p50Ms }), ...(p99Ms === undefined ? {} : { p99Ms }) }];
  });
  const health = services.flatMap((service) =>
    service.versions().map((m) => {
      const w = stack.metrics.windowStats(m.name, m.version);
      return {
        model: m.name,
        version: m.version,
        requests: w.requests,
        errors: w.errors,
        errorRate: w.errorRate,
        ...(w.p50Ms === undefined ? {} : { p50Ms: w.p50Ms }),
        ...(w.p99Ms === undefined ? {} : { p99Ms: w.p99Ms }),
      };
    }),
  );
  return {
    active: [...active, ...pipelines],
    shadows,
    guardrails: watched,
    health,
    ...(capture === undefined ? {} : { capture: { ...capture.stats() } }),
    ...(stack.drift === undefined ? {} : { drift: stack.drift.reports().map(driftStatus) }),
  };
}
