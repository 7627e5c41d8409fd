import { logger } from '../../runtime/log.js';
import type { Model } from '../../runtime/model/index.js';
import {
  DriftMonitor,
  readBaseline,
  type DriftEvent,
  type DriftReport,
  type DriftScore,
} from '../../runtime/monitor/index.js';
import type { CaptureWriter } from '../../runtime/server/index.js';
import type { AgentConfig } from '../config.js';
import type { ActiveModels } from './active-models.js';

const log = logger('agent.monitor');

/** Scores per version in the status message and `agent status`: the worst ones (relative to their thresholds). */
export const STATUS_SCORES = 8;

/**
 * The agent's Model Monitor: a DriftMonitor that follows what is served (each loaded version with a baseline is
 * watched from a fresh window; one no longer loaded is dropped), and on an alarm raises data capture's sample rate
 * for a while and tells the agent (which spools a drift event for the fleet).
 */
export function createDriftWatch(
  config: AgentConfig['monitor'],
  capture: CaptureWriter | undefined,
  onEvent: (event: DriftEvent) => Promise<void>,
): DriftMonitor | undefined {
  if (!config.enabled) return undefined;
  const { captureOnDrift } = config;
  return new DriftMonitor({
    samplePercent: config.samplePercent,
    window: config.window,
    thresholds: config.thresholds,
    onDrift: (event) => {
      log.warn(
        { model: event.model, version: event.version, scores: worst(event.scores) },
        event.type === 'drift' ? 'input drift' : 'drift cleared',
      );
      if (event.type === 'drift' && capture !== undefined && captureOnDrift.samplePercent > 0)
        capture.raiseSampling(captureOnDrift.samplePercent, captureOnDrift.seconds);
      onEvent(event).catch((error: unknown) => log.warn({ error }, 'drift event not spooled'));
    },
  });
}

/** Keeps `monitor` watching exactly the loaded versions of each model that ship a baseline. */
export function followServedModels(monitor: DriftMonitor, models: ActiveModels): void {
  models.onChange((name, loaded) => {
    const versions = new Set(loaded.map((m) => m.version));
    for (const version of monitor.versions(name)) if (!versions.has(version)) monitor.unwatch(name, version);
    for (const model of loaded) if (!monitor.watching(name, model.version)) void watch(monitor, models, model);
  });
}

async function watch(monitor: DriftMonitor, models: ActiveModels, model: Model): Promise<void> {
  if (model.artifactDir === undefined || model.manifest.baseline === undefined) return;
  try {
    const baseline = await readBaseline(model.manifest, model.artifactDir);
    // Still served once the file is read (a switch may have happened meanwhile)?
    if (baseline === undefined || models.loaded(model.name, model.version) !== model) return;
    monitor.watch(model.name, model.version, baseline, model.manifest.pipeline.preprocess?.layout);
  } catch (error) {
    log.warn({ model: model.name, version: model.version, error }, 'drift baseline unreadable: not monitored');
  }
}

/** The scores furthest past (or nearest to) their thresholds, rounded: what status and events carry. */
function worst(scores: readonly DriftScore[]) {
  return [...scores]
    .sort((a, b) => b.value / b.threshold - a.value / a.threshold)
    .slice(0, STATUS_SCORES)
    .map((s) => ({ ...s, value: Number(s.value.toFixed(4)) }));
}

/** A report as the status carries it: the worst scores only, rounded. */
export function driftStatus(report: DriftReport) {
  const { model, version, samples, drifting } = report;
  return { model, version, samples, drifting, scores: worst(report.scores) };
}

/** The event spooled for the fleet on an alarm or its end (`outpost/things/{thing}/events`, like deployment steps). */
export function driftEvent(event: DriftEvent): Record<string, unknown> {
  return {
    type: event.type === 'drift' ? 'monitor.drift' : 'monitor.drift-cleared',
    timestamp: Math.floor(Date.now() / 1000),
    model: event.model,
    version: event.version,
    samples: event.samples,
    scores: worst(event.scores),
  };
}
