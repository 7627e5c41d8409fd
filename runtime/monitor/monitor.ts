import type { InferenceEvent, ServiceObserver } from '../server/serving/service.js';
import type { Baseline, SampleTensor } from './baseline.js';
import { kolmogorovSmirnov, populationStabilityIndex } from './statistics.js';
import { trackedFeatures, type Tracked, type TensorTracks } from './tracks.js';

export type DriftStat = 'psi' | 'ks';

export interface DriftScore {
  readonly feature: string;
  readonly stat: DriftStat;
  readonly value: number;
  readonly threshold: number;
}

export interface DriftReport {
  readonly model: string;
  readonly version: string;
  /** Calls in the window now (sampled ones). */
  readonly samples: number;
  /** Scores are computed once the window holds `minSamples` calls; before that the list is empty. */
  readonly scores: readonly DriftScore[];
  /** Some score is above its threshold (entered at the threshold, left below 80 % of it). */
  readonly drifting: boolean;
}

export interface DriftEvent {
  readonly type: 'drift' | 'drift-cleared';
  readonly model: string;
  readonly version: string;
  readonly samples: number;
  /** The scores above their thresholds (for `drift`), or the worst ones (for `drift-cleared`). */
  readonly scores: readonly DriftScore[];
}

export interface MonitorOptions {
  /** Share of production calls the monitor looks at, like data capture's (0–100). */
  readonly samplePercent: number;
  /** Calls (sampled) the sliding window spans. */
  readonly window: number;
  /** The window slides by a quarter: counts are kept in this many slices and the oldest is dropped whole. */
  readonly slices?: number;
  /** Calls the window must hold before scores count (default: a quarter of the window). */
  readonly minSamples?: number;
  readonly thresholds: { readonly psi: number; readonly ks: number };
  readonly onDrift?: (event: DriftEvent) => void;
  readonly random?: () => number;
}

export const DEFAULT_MONITOR: Readonly<Required<Omit<MonitorOptions, 'onDrift' | 'random' | 'minSamples'>>> =
  Object.freeze({
    samplePercent: 100,
    window: 1000, // calls
    slices: 4,
    thresholds: Object.freeze({ psi: 0.25, ks: 0.2 }), // PSI > 0.25: a significant shift (rule of thumb)
  });

/** Hysteresis: an alarm clears once every score is below this share of its threshold. */
const CLEAR_RATIO = 0.8;

/** One served version's window: counts per tracked feature per slice, preallocated, reused forever. */
class VersionWindow {
  private slice = 0;
  private readonly calls: Uint32Array;
  private offset = 0;
  drifting = false;

  constructor(
    readonly model: string,
    readonly version: string,
    private readonly tracks: ReadonlyMap<string, TensorTracks>,
    readonly features: readonly Tracked[],
    slices: number,
  ) {
    this.calls = new Uint32Array(slices);
  }

  get samples(): number {
    let n = 0;
    for (const c of this.calls) n += c;
    return n;
  }

  /** Bins one call's inputs and outputs into the current slice; returns the calls the slice now holds. */
  record(feeds: Readonly<Record<string, SampleTensor>>, outputs: Readonly<Record<string, SampleTensor>>): number {
    this.offset = (this.offset + 7) % 1_000_003; // a prime stride: successive calls read different positions
    for (const tensors of [feeds, outputs]) {
      for (const name in tensors) {
        const t = tensors[name];
        if (t !== undefined) this.tracks.get(name)?.record(t, this.slice, this.offset);
      }
    }
    const calls = (this.calls[this.slice] ?? 0) + 1;
    this.calls[this.slice] = calls;
    return calls;
  }

  counters(): number {
    return this.calls.length + this.features.reduce((n, f) => n + f.slices.reduce((m, s) => m + s.length, 0), 0);
  }

  /** Slides the window: the oldest slice is emptied and becomes the current one. */
  rotate(): void {
    this.slice = (this.slice + 1) % this.calls.length;
    this.calls[this.slice] = 0;
    for (const f of this.features) f.slices[this.slice]?.fill(0);
  }

  scores(thresholds: MonitorOptions['thresholds']): DriftScore[] {
    const scores: DriftScore[] = [];
    for (const f of this.features) {
      const live = new Float64Array(f.expected.length);
      for (const counts of f.slices) for (let i = 0; i < live.length; i++) live[i] = (live[i] ?? 0) + (counts[i] ?? 0);
      const psi = populationStabilityIndex(f.expected, live);
      scores.push({ feature: f.name, stat: 'psi', value: psi, threshold: thresholds.psi });
      if (f.ordinal) {
        const ks = kolmogorovSmirnov(f.expected, live);
        scores.push({ feature: f.name, stat: 'ks', value: ks, threshold: thresholds.ks });
      }
    }
    return scores;
  }
}

/**
 * Model Monitor on the device: for each watched version, live inputs and outputs binned into the baseline's
 * histogram bins over a sliding window (bounded memory: bins × features × slices counters, allocated once; a call
 * reads at most VALUES_PER_FEATURE values per feature), compared with the baseline by PSI and KS. A `ServiceObserver`
 * like metrics and capture; scores are computed when the window slides and when asked, never per call.
 */
export class DriftMonitor {
  readonly observer: ServiceObserver = { onInference: (event) => this.record(event) };
  private readonly byName = new Map<string, Map<string, VersionWindow>>();
  private readonly options: Required<Omit<MonitorOptions, 'onDrift'>> & Pick<MonitorOptions, 'onDrift'>;

  constructor(options: Partial<MonitorOptions> = {}) {
    const window = options.window ?? DEFAULT_MONITOR.window;
    const slices = options.slices ?? DEFAULT_MONITOR.slices;
    this.options = {
      samplePercent: options.samplePercent ?? DEFAULT_MONITOR.samplePercent,
      window,
      slices,
      minSamples: options.minSamples ?? Math.ceil(window / slices),
      thresholds: options.thresholds ?? DEFAULT_MONITOR.thresholds,
      random: options.random ?? Math.random,
      onDrift: options.onDrift,
    };
  }

  /** Starts watching a version against its baseline (again from empty if it was watched). */
  watch(model: string, version: string, baseline: Baseline, layout?: 'NCHW' | 'NHWC'): void {
    const { tracks, features } = trackedFeatures(baseline, this.options.slices, layout);
    const versions = this.byName.get(model) ?? new Map<string, VersionWindow>();
    versions.set(version, new VersionWindow(model, version, tracks, features, this.options.slices));
    this.byName.set(model, versions);
  }

  unwatch(model: string, version: string): void {
    this.byName.get(model)?.delete(version);
  }

  versions(model: string): string[] {
    return [...(this.byName.get(model)?.keys() ?? [])];
  }

  watching(model: string, version: string): boolean {
    return this.byName.get(model)?.has(version) ?? false;
  }

  /** Counters held (numbers): constant for a watched set, whatever the traffic; the memory test reads it. */
  footprint(): number {
    let n = 0;
    for (const versions of this.byName.values()) for (const w of versions.values()) n += w.counters();
    return n;
  }

  reports(): DriftReport[] {
    return [...this.byName.values()].flatMap((versions) => [...versions.values()].map((w) => this.report(w)));
  }

  private report(w: VersionWindow): DriftReport {
    const samples = w.samples;
    return {
      model: w.model,
      version: w.version,
      samples,
      scores: samples >= this.options.minSamples ? w.scores(this.options.thresholds) : [],
      drifting: w.drifting,
    };
  }

  private record(event: InferenceEvent): void {
    if (event.outputs === undefined) return; // a failed call has no output distribution; guardrails count it
    const w = this.byName.get(event.name)?.get(event.version);
    if (w === undefined) return;
    const { samplePercent, random } = this.options;
    if (samplePercent < 100 && random() * 100 >= samplePercent) return;
    const sliceSize = Math.max(1, Math.ceil(this.options.window / this.options.slices));
    if (w.record(event.feeds, event.outputs) < sliceSize) return;
    this.evaluate(w);
    w.rotate();
  }

  private evaluate(w: VersionWindow): void {
    const report = this.report(w);
    if (report.scores.length === 0) return;
    const over = report.scores.filter((s) => s.value > s.threshold);
    if (!w.drifting && over.length > 0) {
      w.drifting = true;
      this.options.onDrift?.({
        type: 'drift',
        model: w.model,
        version: w.version,
        samples: report.samples,
        scores: over,
      });
    } else if (w.drifting && report.scores.every((s) => s.value < s.threshold * CLEAR_RATIO)) {
      w.drifting = false;
      const worst = [...report.scores].sort((a, b) => b.value / b.threshold - a.value / a.threshold).slice(0, 3);
      this.options.onDrift?.({
        type: 'drift-cleared',
        model: w.model,
        version: w.version,
        samples: report.samples,
        scores: worst,
      });
    }
  }
}
