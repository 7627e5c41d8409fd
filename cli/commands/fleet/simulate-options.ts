import { InvalidArgumentError } from 'commander';
import { TARGET_PROFILES } from '../../../compiler/index.js';
import type { TargetShare } from '../../../device-agent/index.js';

/** Units `--latency`, `--bake`, `--online-after` and `--duration` take; a bare number is milliseconds. */
const DURATION_UNITS: Readonly<Record<string, number>> = Object.freeze({ ms: 1, s: 1000, m: 60_000, h: 3_600_000 });

/** `200ms`, `5s`, `10m`, `1h`, `1.5s` or a bare number of milliseconds → milliseconds. */
export function parseDurationMs(value: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(value.trim());
  const unit = DURATION_UNITS[match?.[2] ?? 'ms'];
  if (match === null || unit === undefined)
    throw new InvalidArgumentError(`"${value}" is not a duration: a number with ms, s, m or h (e.g. 200ms, 5s)`);
  return Math.round(Number(match[1]) * unit);
}

/** A share between 0 and 1 (`--fail-rate 0.3`). */
export function parseRate(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n < 0 || n > 1)
    throw new InvalidArgumentError(`"${value}" is not a share between 0 and 1 (e.g. 0.2)`);
  return n;
}

/** Any integer (a seed). */
export function parseSeed(value: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n)) throw new InvalidArgumentError(`"${value}" is not an integer seed`);
  return n;
}

/**
 * `x86_64:avx2=0.5,arm64:cortex-a72=0.5`: target profile keys of the compiler's table (compiler/targets) with
 * shares; a key without `=share` counts 1. The device reports the profile and its architecture, as a real agent's
 * host detection would (runtime/host).
 */
export function parseTargets(value: string): TargetShare[] {
  const shares = value.split(',').map((part) => {
    const [key = '', share] = part.trim().split('=');
    const profile = TARGET_PROFILES[key];
    if (profile === undefined)
      throw new InvalidArgumentError(
        `"${key}" is not a target profile; known: ${Object.keys(TARGET_PROFILES).join(', ')}`,
      );
    const n = share === undefined ? 1 : Number(share);
    if (!(n > 0) || !Number.isFinite(n))
      throw new InvalidArgumentError(`"${part}": the share after = must be a number above 0`);
    return { target: { profile: profile.key, arch: profile.arch }, share: n };
  });
  if (shares.length === 0) throw new InvalidArgumentError('--targets names no target');
  return shares;
}
