import { OutpostError } from '../../runtime/errors.js';
import { seededRandom } from '../../runtime/tensor/index.js';

/**
 * Who the simulated devices are and what happens to each, decided from a seed before anything runs, so a rehearsal
 * is reproducible and a test can compute what it must see. Nothing here depends on timing or on arrival order:
 * a device's outcome for a job is a function of (seed, job id, device index) alone.
 */

export interface SimulatedTarget {
  /** The target profile the device reports (compiler/targets profile key), e.g. "arm64:cortex-a72". */
  readonly profile: string;
  /** Its CPU's own profile when the device is a Jetson; else the same as `profile`. */
  readonly cpuProfile?: string;
  readonly arch: 'x86_64' | 'arm64';
}

export interface TargetShare {
  readonly target: SimulatedTarget;
  /** Share of the devices, > 0; shares are normalised (0.5 + 0.5 and 1 + 1 mean the same). */
  readonly share: number;
}

export interface SimulationPlanOptions {
  readonly devices: number;
  /** Device names are `<prefix>0 … <prefix>N-1`. */
  readonly prefix: string;
  readonly seed: number;
  readonly targets: readonly TargetShare[];
  /** Share of devices offline at the start (registered earlier, now dark), 0..1. */
  readonly offlineRate: number;
  /** Share of the devices whose stand-in install fails its self-test, per job, 0..1. */
  readonly failRate: number;
  /** Share that installs, then fails its bake (a guardrail alarm: rolled back), per job, 0..1. */
  readonly guardrailFailRate: number;
}

export interface PlannedDevice {
  readonly index: number;
  readonly thing: string;
  readonly target: SimulatedTarget;
  /** Offline at the start: announced once, then dark until `onlineAfter` (or for good). */
  readonly offline: boolean;
}

/** What the stand-in install does for one job on one device. */
export type PlannedOutcome = 'succeed' | 'fail' | 'guardrail-fail';

export const DEFAULT_PREFIX = 'sim-';
export const DEFAULT_SEED = 1;
/** What `--targets` means when absent: the hosts' default profiles, half and half (runtime/host HOST_DEFAULT_PROFILES). */
export const DEFAULT_TARGETS: readonly TargetShare[] = Object.freeze([
  { target: { profile: 'x86_64:avx2', arch: 'x86_64' }, share: 0.5 },
  { target: { profile: 'arm64:cortex-a72', arch: 'arm64' }, share: 0.5 },
]);

/** FNV-1a over a string: a 32-bit seed for a sub-stream (a job id), the same on every platform. */
export function hashSeed(seed: number, text: string): number {
  let h = (0x811c9dc5 ^ seed) >>> 0;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

/** The indices 0 … n-1 in an order fixed by `seed` (Fisher–Yates with Mulberry32). */
export function seededPermutation(n: number, seed: number): number[] {
  const random = seededRandom(seed);
  const order = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    const a = order[i] as number;
    order[i] = order[j] as number;
    order[j] = a;
  }
  return order;
}

/** `Math.round(n × rate)`, the exact number of devices a rate picks out of n. */
export const countOf = (n: number, rate: number): number => Math.round(n * rate);

function checkRate(name: string, rate: number): void {
  if (!Number.isFinite(rate) || rate < 0 || rate > 1)
    throw new OutpostError('INVALID_ARGUMENT', `${name} ${rate} is not a share between 0 and 1`);
}

export function checkPlanOptions(options: SimulationPlanOptions): void {
  if (!Number.isInteger(options.devices) || options.devices < 1)
    throw new OutpostError('INVALID_ARGUMENT', `--devices ${options.devices} is not a positive integer`);
  checkRate('--offline-rate', options.offlineRate);
  checkRate('--fail-rate', options.failRate);
  checkRate('--guardrail-fail-rate', options.guardrailFailRate);
  if (options.failRate + options.guardrailFailRate > 1)
    throw new OutpostError(
      'INVALID_ARGUMENT',
      `--fail-rate ${options.failRate} and --guardrail-fail-rate ${options.guardrailFailRate} add up to more than 1`,
    );
  if (options.targets.length === 0 || options.targets.some((t) => !(t.share > 0)))
    throw new OutpostError('INVALID_ARGUMENT', 'every --targets share must be a number above 0');
}

/**
 * The devices: targets dealt by largest remainder (exact counts: 0.5/0.5 of 5 is 3 and 2), spread over the indices
 * by a seeded permutation so that neither targets nor offline devices sit in one block of names; the offline ones
 * are the first `round(N × offlineRate)` of another permutation.
 */
export function planDevices(options: SimulationPlanOptions): PlannedDevice[] {
  checkPlanOptions(options);
  const n = options.devices;
  const total = options.targets.reduce((sum, t) => sum + t.share, 0);
  const exact = options.targets.map((t) => (t.share / total) * n);
  const counts = exact.map(Math.floor);
  const byRemainder = exact.map((x, i) => [x - Math.floor(x), i] as const).sort((a, b) => b[0] - a[0] || a[1] - b[1]);
  for (let k = 0, left = n - counts.reduce((a, b) => a + b, 0); k < left; k++) {
    const i = byRemainder[k % byRemainder.length]?.[1] ?? 0;
    counts[i] = (counts[i] ?? 0) + 1;
  }
  const targetOf: SimulatedTarget[] = new Array<SimulatedTarget>(n);
  const dealt = seededPermutation(n, hashSeed(options.seed, 'targets'));
  let at = 0;
  options.targets.forEach((t, i) => {
    for (let c = 0; c < (counts[i] ?? 0); c++) targetOf[dealt[at++] as number] = t.target;
  });
  const offline = new Set(
    seededPermutation(n, hashSeed(options.seed, 'offline')).slice(0, countOf(n, options.offlineRate)),
  );
  return Array.from({ length: n }, (_, index) => ({
    index,
    thing: `${options.prefix}${index}`,
    target: targetOf[index] as SimulatedTarget,
    offline: offline.has(index),
  }));
}

/**
 * A job's outcomes over all N devices: a permutation seeded by (seed, job id); the first `round(N × failRate)`
 * fail their self-test, the next `round(N × guardrailFailRate)` fail their bake, the rest succeed. Exact counts over
 * the whole simulated fleet, reproducible, and different devices for different jobs (a rollback is a new job).
 */
export function planOutcomes(
  options: Pick<SimulationPlanOptions, 'devices' | 'seed' | 'failRate' | 'guardrailFailRate'>,
  jobId: string,
): PlannedOutcome[] {
  const n = options.devices;
  const failing = countOf(n, options.failRate);
  const baking = countOf(n, options.guardrailFailRate);
  const outcomes = new Array<PlannedOutcome>(n).fill('succeed');
  seededPermutation(n, hashSeed(options.seed, `job:${jobId}`)).forEach((device, rank) => {
    if (rank < failing) outcomes[device] = 'fail';
    else if (rank < failing + baking) outcomes[device] = 'guardrail-fail';
  });
  return outcomes;
}
