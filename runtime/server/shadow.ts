import type { TensorData } from '../tensor/dtype.js';
import type { Outputs } from '../model/model.js';
import { latencyStats } from '../bench/stats.js';

/** What a shadow comparison has found so far; `outpost agent status` and the status messages report it. */
export interface ShadowReport {
  readonly version: string;
  readonly percent: number;
  /** Requests mirrored and compared. */
  readonly compared: number;
  readonly shadowErrors: number;
  /** Fraction of classifier-like rows (last axis ≥ 2) whose argmax agreed. */
  readonly agreement: number | undefined;
  /** Mean cosine similarity of the outputs, and the largest |Δ| seen. */
  readonly meanCosine: number | undefined;
  readonly maxAbsDiff: number;
  readonly productionP50Ms: number | undefined;
  readonly shadowP50Ms: number | undefined;
}

/** Latency samples kept per side: a ring, so memory is fixed however long the shadow runs. */
const SAMPLES = 1024;

function argmax(data: TensorData, start: number, length: number): number {
  let best = 0;
  for (let i = 1; i < length; i++) if (Number(data[start + i]) > Number(data[start + best])) best = i;
  return best;
}

/**
 * Compares a shadow version's answers with production's on mirrored requests (SageMaker's shadow tests, on the
 * device): agreement of decisions, output divergence and latency. The shadow's outputs never reach callers.
 */
export class ShadowStats {
  private compared = 0;
  private errors = 0;
  private rows = 0;
  private agreeing = 0;
  private cosineSum = 0;
  private cosineCount = 0;
  private maxAbs = 0;
  private readonly production = new Float64Array(SAMPLES);
  private readonly shadow = new Float64Array(SAMPLES);
  private samples = 0;

  constructor(
    readonly version: string,
    readonly percent: number,
  ) {}

  error(): void {
    this.errors++;
  }

  record(production: Outputs, shadow: Outputs, productionMs: number, shadowMs: number): void {
    this.compared++;
    const slot = this.samples++ % SAMPLES;
    this.production[slot] = productionMs;
    this.shadow[slot] = shadowMs;
    for (const [name, p] of Object.entries(production)) {
      const s = shadow[name];
      if (s === undefined || s.data.length !== p.data.length || Array.isArray(p.data)) continue;
      let dot = 0;
      let np = 0;
      let ns = 0;
      for (let i = 0; i < p.data.length; i++) {
        const a = Number(p.data[i]);
        const b = Number(s.data[i]);
        dot += a * b;
        np += a * a;
        ns += b * b;
        const d = Math.abs(a - b);
        if (d > this.maxAbs) this.maxAbs = d;
      }
      if (np > 0 && ns > 0) {
        this.cosineSum += dot / Math.sqrt(np * ns);
        this.cosineCount++;
      }
      const classes = p.dims[p.dims.length - 1] ?? 0;
      if (p.dims.length >= 2 && classes >= 2) {
        for (let row = 0; row + classes <= p.data.length; row += classes) {
          this.rows++;
          if (argmax(p.data, row, classes) === argmax(s.data, row, classes)) this.agreeing++;
        }
      }
    }
  }

  report(): ShadowReport {
    const n = Math.min(this.samples, SAMPLES);
    return {
      version: this.version,
      percent: this.percent,
      compared: this.compared,
      shadowErrors: this.errors,
      agreement: this.rows > 0 ? this.agreeing / this.rows : undefined,
      meanCosine: this.cosineCount > 0 ? this.cosineSum / this.cosineCount : undefined,
      maxAbsDiff: this.maxAbs,
      productionP50Ms: n > 0 ? latencyStats(this.production.subarray(0, n)).p50 : undefined,
      shadowP50Ms: n > 0 ? latencyStats(this.shadow.subarray(0, n)).p50 : undefined,
    };
  }
}
