import type { Outputs } from '../../model/model.js';
import { latencyStats } from '../../tuning/stats.js';
import { Agreement, looksLikeClassifier } from '../../tensor/agreement.js';

/** What a shadow comparison has found so far; `outpost agent status` and the status messages report it. */
export interface ShadowReport {
  readonly version: string;
  readonly percent: number;
  /** Requests mirrored and compared. */
  readonly compared: number;
  readonly shadowErrors: number;
  /** Fraction of classifier-like rows (last axis ≥ 2) whose argmax agreed. */
  readonly agreement: number | undefined;
  /**
   * Share of string (BYTES) outputs compared that were exactly the same, every element in order (a pipeline's OCR
   * `text`); undefined when no output is a string tensor. String outputs take no part in cosine and |Δ|.
   */
  readonly exactMatch: number | undefined;
  /** Mean cosine similarity of the numeric outputs, and the largest |Δ| seen (Infinity once NaN/Inf showed on one side). */
  readonly meanCosine: number | undefined;
  readonly maxAbsDiff: number;
  /** Output values that were NaN/±Infinity on one side only. */
  readonly nonFiniteMismatches: number;
  readonly productionP50Ms: number | undefined;
  readonly shadowP50Ms: number | undefined;
}

/** Whether a string tensor's elements are the same, in the same order, as another tensor's. */
function sameStrings(a: ArrayLike<unknown>, b: ArrayLike<unknown>): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Latency samples kept per side: a ring, so memory is fixed however long the shadow runs. */
const SAMPLES = 1024;

/**
 * Compares a shadow version's answers with production's on mirrored requests (SageMaker's shadow tests, on the
 * device): agreement of decisions, output divergence and latency. The shadow's outputs never reach callers.
 */
export class ShadowStats {
  private compared = 0;
  private errors = 0;
  /** One accumulator per output (runtime/tensor/agreement.ts, the compiler's accuracy gate uses the same). */
  private readonly agreements = new Map<string, Agreement>();
  private strings = 0;
  private stringMatches = 0;
  private cosineSum = 0;
  private cosineCount = 0;
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
      if (p.type === 'string') {
        this.strings++;
        if (s !== undefined && sameStrings(p.data, s.data)) this.stringMatches++;
        continue;
      }
      let agreement = this.agreements.get(name);
      if (agreement === undefined) {
        agreement = new Agreement(looksLikeClassifier(p.dims));
        this.agreements.set(name, agreement);
      }
      // A missing output disagrees everywhere (its length is 0).
      const pair = agreement.add(s?.data ?? [], p.data, p.dims, p.type);
      this.cosineSum += pair.cosine;
      this.cosineCount++;
    }
  }

  report(): ShadowReport {
    const n = Math.min(this.samples, SAMPLES);
    return {
      version: this.version,
      percent: this.percent,
      compared: this.compared,
      shadowErrors: this.errors,
      agreement: this.rowAgreement(),
      exactMatch: this.strings > 0 ? this.stringMatches / this.strings : undefined,
      meanCosine: this.cosineCount > 0 ? this.cosineSum / this.cosineCount : undefined,
      maxAbsDiff: Math.max(0, ...[...this.agreements.values()].map((a) => a.maxAbsError)),
      nonFiniteMismatches: [...this.agreements.values()].reduce((n, a) => n + a.nonFiniteMismatches, 0),
      productionP50Ms: n > 0 ? latencyStats(this.production.subarray(0, n)).p50 : undefined,
      shadowP50Ms: n > 0 ? latencyStats(this.shadow.subarray(0, n)).p50 : undefined,
    };
  }

  /** Argmax agreement over every classifier-like output's rows, weighted by rows. */
  private rowAgreement(): number | undefined {
    let rows = 0;
    let agreeing = 0;
    for (const a of this.agreements.values()) {
      const share = a.top1Agreement;
      if (share === undefined) continue;
      const n = a.rows;
      rows += n;
      agreeing += share * n;
    }
    return rows > 0 ? agreeing / rows : undefined;
  }
}
