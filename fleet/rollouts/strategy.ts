import { OutpostError } from '../../runtime/errors.js';

/**
 * The operator's rollout strategy, from `--strategy <s> [--then <s>]`, as phases of waves. Pure: no I/O, no clock.
 *
 *   all-at-once                     one wave with every target (IoT Jobs' default; SageMaker's ALL_AT_ONCE)
 *   canary:<N|P%>[,bake=<duration>] a first wave of N things or P % of them (at least one), then the rest
 *   linear:<P%>,every=<duration>    waves of P % of the target, each released after the previous one baked
 *   --strategy canary:… --then linear:…   the canary, then linear waves over what is left
 *
 * Durations are `<n><unit>` terms, summed: `90s`, `10m`, `1h30m`; units ms, s, m, h, d. A bake is at most a week
 * (CodeDeploy's longest wait; the agent's MAX_BAKE_SECONDS).
 */
export const MAX_BAKE_MS = 7 * 24 * 3600 * 1000; // milliseconds: a week

export type Phase =
  | { readonly kind: 'all-at-once' }
  | { readonly kind: 'canary'; readonly count?: number; readonly percent?: number; readonly bakeMs: number }
  | { readonly kind: 'linear'; readonly percent: number; readonly everyMs: number };

const UNIT_MS: Readonly<Record<string, number>> = Object.freeze({
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
});

function invalid(field: string, value: string, expected: string): OutpostError {
  return new OutpostError('STRATEGY_INVALID', `${field} "${value}": expected ${expected}`, {
    details: { field, value, expected },
  });
}

/** `10m`, `1h30m`, `500ms` → milliseconds (0 allowed: no bake). */
export function parseDuration(text: string, field = 'duration'): number {
  const expected = 'a duration such as 30s, 10m, 1h30m (units ms, s, m, h, d)';
  const trimmed = text.trim();
  if (trimmed === '0') return 0;
  const terms = [...trimmed.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h|d)/g)];
  if (terms.length === 0 || terms.map((t) => t[0]).join('') !== trimmed) throw invalid(field, text, expected);
  const ms = terms.reduce((sum, t) => sum + Number(t[1]) * (UNIT_MS[t[2] ?? ''] ?? Number.NaN), 0);
  if (!Number.isFinite(ms)) throw invalid(field, text, expected);
  if (ms > MAX_BAKE_MS) throw invalid(field, text, 'at most 7d');
  return Math.round(ms);
}

/** `5%` → 5; `N` → a count. Percentages are (0, 100]; counts ≥ 1. */
function parseSize(text: string, field: string, allowCount: boolean): { count?: number; percent?: number } {
  const percent = /^(\d+(?:\.\d+)?)%$/.exec(text);
  if (percent !== null) {
    const value = Number(percent[1]);
    if (value <= 0 || value > 100) throw invalid(field, text, 'a percentage in (0, 100]');
    return { percent: value };
  }
  if (allowCount && /^\d+$/.test(text) && Number(text) >= 1) return { count: Number(text) };
  throw invalid(
    field,
    text,
    allowCount ? 'a number of things (≥ 1) or a percentage such as 5%' : 'a percentage such as 25%',
  );
}

function settings(parts: readonly string[], field: string, allowed: readonly string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of parts) {
    const [key = '', value, ...rest] = part.split('=');
    if (value === undefined || rest.length > 0 || !allowed.includes(key) || out.has(key))
      throw invalid(field, part, `one of ${allowed.map((a) => `${a}=…`).join(', ')}, each once`);
    out.set(key, value);
  }
  return out;
}

/** One `--strategy` or `--then` value. */
export function parsePhase(text: string, field = 'strategy'): Phase {
  const [head = '', ...rest] = text.trim().split(',');
  const [kind, size] = head.split(':');
  if (kind === 'all-at-once' && size === undefined && rest.length === 0) return { kind: 'all-at-once' };
  if (kind === 'canary' && size !== undefined) {
    const bake = settings(rest, field, ['bake']).get('bake');
    return {
      kind: 'canary',
      ...parseSize(size, field, true),
      bakeMs: bake === undefined ? 0 : parseDuration(bake, `${field} bake`),
    };
  }
  if (kind === 'linear' && size !== undefined) {
    const every = settings(rest, field, ['every']).get('every');
    if (every === undefined) throw invalid(field, text, 'linear:<P%>,every=<duration>');
    const { percent = 100 } = parseSize(size, field, false);
    return { kind: 'linear', percent, everyMs: parseDuration(every, `${field} every`) };
  }
  throw invalid(field, text, 'all-at-once, canary:<N|P%>[,bake=<duration>] or linear:<P%>,every=<duration>');
}

/** `--strategy s [--then t]`: a canary may be followed by linear waves (or all-at-once, the same as none). */
export function parseStrategy(strategy: string, then?: string): Phase[] {
  const first = parsePhase(strategy, 'strategy');
  if (then === undefined) return [first];
  const second = parsePhase(then, 'then');
  if (first.kind !== 'canary' || second.kind === 'canary')
    throw invalid('then', then, '--then after a canary only, and a linear or all-at-once phase');
  return [first, second];
}

/** The phases back as text (what `fleet status` shows). */
export function formatPhase(phase: Phase): string {
  const duration = (ms: number) => (ms % 60_000 === 0 && ms > 0 ? `${ms / 60_000}m` : `${ms / 1000}s`);
  if (phase.kind === 'all-at-once') return 'all-at-once';
  if (phase.kind === 'canary')
    return `canary:${phase.count ?? `${phase.percent ?? 0}%`}${phase.bakeMs > 0 ? `,bake=${duration(phase.bakeMs)}` : ''}`;
  return `linear:${phase.percent}%,every=${duration(phase.everyMs)}`;
}

/** A wave's size and how long it bakes once every execution in it has ended healthy. */
export interface WaveSpec {
  readonly size: number;
  readonly bakeMs: number;
}

/**
 * Wave sizes for `total` targets, in order. A canary is N things or ceil(P % × total), at least one and never all
 * when there is a rest; linear waves are ceil(P % × total) each, of the whole target, the last one what is left.
 * The last wave never bakes (nothing waits for it).
 */
export function waveSizes(phases: readonly Phase[], total: number): WaveSpec[] {
  const waves: WaveSpec[] = [];
  let left = total;
  const take = (size: number, bakeMs: number) => {
    const n = Math.min(left, Math.max(1, size));
    if (n > 0) waves.push({ size: n, bakeMs });
    left -= n;
  };
  for (const phase of phases) {
    if (left <= 0) break;
    if (phase.kind === 'all-at-once') take(left, 0);
    else if (phase.kind === 'canary') {
      const size = phase.count ?? Math.ceil(((phase.percent ?? 100) * total) / 100);
      take(total > 1 ? Math.min(size, total - 1) : size, phase.bakeMs);
    } else {
      const size = Math.ceil((phase.percent * total) / 100);
      while (left > 0) take(size, phase.everyMs);
    }
  }
  if (left > 0) take(left, 0); // a canary alone: then the rest
  const last = waves.at(-1);
  if (last !== undefined) waves[waves.length - 1] = { size: last.size, bakeMs: 0 };
  return waves;
}
