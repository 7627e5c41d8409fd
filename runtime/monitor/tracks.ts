import type { Baseline, SampleTensor } from './baseline.js';
import { classCount, countClasses } from './baseline.js';
import { elementReader, featureLayout, samplePlan, type SamplePlan } from './features.js';
import { binOf } from './statistics.js';

/** One feature the window counts: the baseline's bins and counts, and the live counts per slice. */
export interface Tracked {
  readonly name: string;
  readonly edges: readonly number[];
  /** The baseline's counts per bin. */
  readonly expected: readonly number[];
  /** Live counts per bin, one array per slice of the window (allocated once). */
  readonly slices: readonly Float64Array[];
  /** Values with an order (KS applies); class ids have none (PSI only). */
  readonly ordinal: boolean;
}

/** What the window does with one named tensor of a call: bin its features, count its classes. */
export class TensorTracks {
  classes: { readonly size: number; readonly feature: Tracked } | undefined;
  private lastDims: readonly number[] | undefined;
  private last: { plan: SamplePlan; tracked: (Tracked | undefined)[] } | undefined;

  constructor(
    readonly name: string,
    private readonly byFeature: ReadonlyMap<string, Tracked>,
    private readonly imageLayout: 'NCHW' | 'NHWC' | undefined,
  ) {}

  /** Adds one call's tensor to `slice`; `offset` rotates which values a large feature contributes. */
  record(t: SampleTensor, slice: number, offset: number): void {
    if (Array.isArray(t.data)) return;
    const classes = this.classes;
    if (classes !== undefined && classCount(t.dims) === classes.size) {
      const counts = classes.feature.slices[slice];
      if (counts !== undefined) countClasses(t, classes.size, counts);
    }
    const live = this.planFor(t.dims, t.data.length);
    if (live === undefined) return;
    const { feature, index, step, stride } = live.plan;
    const shift = (offset % step) * stride;
    // float32/float64/integers read directly; float16, bfloat16 and 64-bit integers through their reader.
    const direct = t.type !== 'float16' && t.type !== 'bfloat16' && !(t.data instanceof BigInt64Array);
    const data = t.data;
    const read = direct ? undefined : elementReader(t.type, data);
    for (let k = 0; k < index.length; k++) {
      const i = (index[k] as number) + shift;
      const v = read === undefined ? (data[i] as number) : read(i);
      if (!Number.isFinite(v)) continue; // non-finite values are the guardrails' business, not a distribution's
      const tracked = live.tracked[feature[k] as number];
      const counts = tracked?.slices[slice];
      if (tracked === undefined || counts === undefined) continue;
      const bin = binOf(tracked.edges, v);
      counts[bin] = (counts[bin] ?? 0) + 1;
    }
  }

  /** The live layout for these dims, matched to the baseline's features by name (cached while dims repeat). */
  private planFor(dims: readonly number[], total: number) {
    if (this.lastDims !== undefined && sameDims(dims, this.lastDims)) return this.last;
    const layout = featureLayout(this.name, dims, this.imageLayout);
    const tracked = layout.names.map((n) => this.byFeature.get(n));
    this.lastDims = [...dims];
    this.last = tracked.some((t) => t !== undefined) ? { plan: samplePlan(layout, dims, total), tracked } : undefined;
    return this.last;
  }
}

function sameDims(a: readonly number[], b: readonly number[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** The features of a baseline as window counters: one Tracked per feature, grouped by tensor. */
export function trackedFeatures(
  baseline: Baseline,
  slices: number,
  layout: 'NCHW' | 'NHWC' | undefined,
): { tracks: Map<string, TensorTracks>; features: Tracked[] } {
  const features: Tracked[] = [];
  const byTensor = new Map<string, Map<string, Tracked>>();
  for (const f of [...baseline.inputs, ...baseline.outputs]) {
    const tracked: Tracked = {
      name: f.feature,
      edges: f.histogram.edges,
      expected: f.histogram.counts,
      slices: Array.from({ length: slices }, () => new Float64Array(f.histogram.counts.length)),
      ordinal: true,
    };
    features.push(tracked);
    const forTensor = byTensor.get(f.tensor) ?? new Map<string, Tracked>();
    forTensor.set(f.feature, tracked);
    byTensor.set(f.tensor, forTensor);
  }
  const tracks = new Map<string, TensorTracks>();
  for (const [tensor, byFeature] of byTensor) {
    const inputSide = baseline.inputs.some((f) => f.tensor === tensor);
    tracks.set(tensor, new TensorTracks(tensor, byFeature, inputSide ? layout : undefined));
  }
  for (const { output, counts } of baseline.classes) {
    const feature: Tracked = {
      name: `${output}:class`,
      // Class c lands in bin c: edges 1, 2, …, C−1 (binOf counts the edges at or below the value).
      edges: counts.slice(1).map((_, i) => i + 1),
      expected: counts,
      slices: Array.from({ length: slices }, () => new Float64Array(counts.length)),
      ordinal: false,
    };
    features.push(feature);
    const track = tracks.get(output) ?? new TensorTracks(output, new Map(), undefined);
    track.classes = { size: counts.length, feature };
    tracks.set(output, track);
  }
  return { tracks, features };
}
