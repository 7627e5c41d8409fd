/** What a device reports about itself in its status message (device-agent/storage/status.ts), as the registry keeps it. */
export interface ThingTarget {
  /** Target profile key the agent detected, e.g. "arm64:cortex-a72", "cuda:sm_87". */
  readonly profile?: string;
  /** The CPU's own profile (differs from `profile` on a Jetson). */
  readonly cpuProfile?: string;
  /** x86_64 | arm64. */
  readonly arch?: string;
}

export interface ThingModel {
  readonly model: string;
  readonly version: string;
  readonly variant?: string;
  readonly backend?: string;
  readonly role?: string;
  readonly trafficPercent?: number;
}

export interface ThingHealth {
  readonly model: string;
  readonly version: string;
  readonly requests: number;
  readonly errors: number;
  readonly p50Ms?: number;
  readonly p99Ms?: number;
}

/** A monitored version's drift as the thing last reported it (device-agent/serving/drift.ts): the worst scores. */
export interface ThingDrift {
  readonly model: string;
  readonly version: string;
  /** Calls in the device's drift window. */
  readonly samples: number;
  readonly drifting: boolean;
  readonly scores: readonly {
    readonly feature: string;
    readonly stat: string;
    readonly value: number;
    readonly threshold: number;
  }[];
}

/**
 * A shadow comparison the thing runs (SageMaker-style shadow test): the shadow version answers a share of production
 * calls only to be compared with production's answer.
 */
export interface ThingShadow {
  readonly model: string;
  readonly version: string;
  /** Share of production calls mirrored to the shadow, in percent. */
  readonly percent: number;
  readonly compared: number;
  readonly shadowErrors: number;
  /** Share of compared calls whose top class (or rounded answer) agreed, 0–1. */
  readonly agreement?: number;
  /** Share of compared string outputs (a pipeline's OCR `text`) exactly equal to production's, 0–1. */
  readonly exactMatch?: number;
  readonly meanCosine?: number;
  /** null: a NaN or infinity on one side only (JSON has no Infinity). */
  readonly maxAbsDiff: number | null;
  readonly nonFiniteMismatches: number;
  readonly productionP50Ms?: number;
  readonly shadowP50Ms?: number;
}

/** A version under guardrail watch after a deployment (its device-side bake): what has been counted so far. */
export interface ThingGuardrail {
  readonly model: string;
  readonly version: string;
  readonly requests: number;
  readonly errors: number;
  readonly errorRate: number;
  readonly p50Ms?: number;
  readonly p99Ms?: number;
  readonly elapsedSeconds: number;
  readonly windowSeconds: number;
}
