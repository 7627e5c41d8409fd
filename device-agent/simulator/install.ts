import { setTimeout as sleep } from 'node:timers/promises';
import type { Manifest } from '../../runtime/artifact/index.js';
import { OutpostError } from '../../runtime/errors.js';
import type { PlannedOutcome } from './plan.js';

/**
 * STAND-IN for the agent's install, self-test and serving (device-agent/deployment-install.ts `test`,
 * deployment-serve.ts, bake.ts): no ONNX Runtime is loaded, no model file is read. Everything before it is real (the
 * Jobs client, the verified block download, unpacking and verifying the artifact's signature and hashes); what it
 * decides is only what a real device would have found: its self-test passes or fails, its bake passes or a guardrail
 * alarms. The outcome comes from the simulation plan (plan.ts), so it is seeded and reproducible, and the errors
 * carry the codes a real agent reports (SELF_TEST_FAILED, GUARDRAIL_ERROR_RATE), marked as simulated in the reason.
 */
export interface SimulatedInstallOptions {
  readonly outcome: PlannedOutcome;
  /** How long install + self-test take on this simulated device; ms. */
  readonly latencyMs: number;
  readonly signal: AbortSignal;
}

/** The error-rate threshold the simulated guardrail reports crossing (the figure in its message). */
const SIMULATED_MAX_ERROR_RATE = 0.05;
/** Calls the simulated guardrail says it counted before alarming. */
const SIMULATED_CALLS = 40;
const SIMULATED_ERRORS = 6;

export interface SimulatedSelection {
  readonly variant: string;
  readonly backend: 'native' | 'wasm';
}

export class SimulatedInstall {
  constructor(private readonly options: SimulatedInstallOptions) {}

  /**
   * Install + self-test: waits the configured latency, then picks the variant the real selection would start from
   * (best rank that runs natively, else on WASM; among the fetched ones in the files layout), or fails with SELF_TEST_FAILED when the plan says so.
   */
  async selfTest(manifest: Manifest, fetched?: readonly string[]): Promise<SimulatedSelection> {
    await this.wait(this.options.latencyMs);
    if (this.options.outcome === 'fail') {
      throw new OutpostError(
        'SELF_TEST_FAILED',
        `${manifest.name}@${manifest.version}: simulated self-test failure (fleet simulate --fail-rate)`,
      );
    }
    // Of the variants fetched (files layout), or of all of them (archive).
    const ranked = manifest.variants
      .filter((v) => fetched === undefined || fetched.includes(v.id))
      .sort((a, b) => a.rank - b.rank);
    const native = ranked.find((v) => v.backends.includes('native'));
    const chosen = native ?? ranked[0];
    return { variant: chosen?.id ?? 'unknown', backend: native === undefined ? 'wasm' : 'native' };
  }

  /**
   * The bake: the window passes quietly, or, when the plan says so, a guardrail alarm halfway through it (at once
   * for a window of 0: the simulated device always has guardrails, so a guardrail failure needs no window).
   */
  async bake(model: string, version: string, seconds: number): Promise<void> {
    if (this.options.outcome !== 'guardrail-fail') {
      await this.wait(seconds * 1000);
      return;
    }
    await this.wait((seconds * 1000) / 2);
    const rate = SIMULATED_ERRORS / SIMULATED_CALLS;
    throw new OutpostError(
      'GUARDRAIL_ERROR_RATE',
      `${model}@${version}: ${SIMULATED_ERRORS} of ${SIMULATED_CALLS} calls failed (${pct(rate)}), more than the ` +
        `${pct(SIMULATED_MAX_ERROR_RATE)} allowed (simulated: fleet simulate --guardrail-fail-rate)`,
    );
  }

  private async wait(ms: number): Promise<void> {
    if (ms <= 0) return;
    try {
      await sleep(ms, undefined, { signal: this.options.signal });
    } catch (error) {
      throw new OutpostError('DEPLOYMENT_INTERRUPTED', 'simulated device stopping', { cause: error });
    }
  }
}

const pct = (rate: number): string => `${(rate * 100).toFixed(1)} %`;
