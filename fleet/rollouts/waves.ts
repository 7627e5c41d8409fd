import type { ExecutionRecord, WaveRecord, WaveState } from '../store/index.js';

/**
 * A wave's life, on one screen. Every move is a conditional update on the wave's version, so two workers driving
 * one rollout cannot start a wave twice.
 *
 *   PENDING ──previous wave DONE──▶ RELEASING ──every member released──▶ RUNNING ──every member ended──▶ BAKING
 *      │                               │  (at the rate: maximumPerMinute,        │  healthy, or tolerated by     │
 *      │                               │   exponentialRate)                      │  abortConfig                   │
 *      └───────────── abort, cancel ───┴─────────────────▶ CANCELED ◀────────────┘               bakeUntil passed ▼
 *                                                                                                               DONE
 */
export const WAVE_TRANSITIONS: Readonly<Record<WaveState, readonly WaveState[]>> = Object.freeze({
  PENDING: Object.freeze(['RELEASING', 'CANCELED'] as const),
  RELEASING: Object.freeze(['RUNNING', 'CANCELED'] as const),
  RUNNING: Object.freeze(['BAKING', 'DONE', 'CANCELED'] as const),
  BAKING: Object.freeze(['DONE', 'CANCELED'] as const),
  DONE: Object.freeze([]),
  CANCELED: Object.freeze([]),
});

export function canMoveWave(from: WaveState, to: WaveState): boolean {
  return WAVE_TRANSITIONS[from].includes(to);
}

/** Each thing's latest execution (the highest retry): what counts for health, abort and status. */
export function latestByThing(executions: readonly ExecutionRecord[]): ExecutionRecord[] {
  const latest = new Map<string, ExecutionRecord>();
  for (const e of executions) {
    const seen = latest.get(e.thing);
    if (seen === undefined || e.retry > seen.retry) latest.set(e.thing, e);
  }
  return [...latest.values()];
}

/** Milliseconds of bake left at `nowMs` (0 once passed; undefined when the wave is not baking). */
export function bakeRemaining(wave: WaveRecord, nowMs: number): number | undefined {
  if (wave.state !== 'BAKING' || wave.bakeUntilMs === undefined) return undefined;
  return Math.max(0, wave.bakeUntilMs - nowMs);
}
