import { pino, type Logger, type LevelWithSilent } from 'pino';

/**
 * Outpost logs through pino to stderr (stdout belongs to command output). The level comes from `OUTPOST_LOG_LEVEL`
 * or from `setLogLevel()` (the CLI's `--verbose`/`--quiet`). Components take a child logger named after themselves.
 */
const LEVELS: readonly LevelWithSilent[] = Object.freeze([
  'fatal',
  'error',
  'warn',
  'info',
  'debug',
  'trace',
  'silent',
]);

/** `OUTPOST_LOG_LEVEL` when it names a pino level; undefined when unset, empty or unknown (then the default holds). */
export function logLevelFromEnv(): LevelWithSilent | undefined {
  const value = process.env.OUTPOST_LOG_LEVEL;
  return LEVELS.find((level) => level === value);
}

const root: Logger = pino(
  {
    name: 'outpost',
    level: logLevelFromEnv() ?? 'info',
    base: { pid: process.pid },
    redact: { paths: ['*.privateKey', '*.key', '*.password', '*.token', 'config.tls.key'], censor: '[redacted]' },
  },
  pino.destination({ fd: 2, sync: true }),
);

if (
  process.env.OUTPOST_LOG_LEVEL !== undefined &&
  process.env.OUTPOST_LOG_LEVEL !== '' &&
  logLevelFromEnv() === undefined
)
  root.warn({ accepted: LEVELS }, `OUTPOST_LOG_LEVEL=${process.env.OUTPOST_LOG_LEVEL} is not a log level; using info`);

export type { Logger };

/** pino children copy the level at creation; keep them so `setLogLevel()` reaches loggers made at import time. */
const children = new Map<string, Logger>();

export function logger(component: string): Logger {
  let child = children.get(component);
  if (child === undefined) {
    child = root.child({ component });
    children.set(component, child);
  }
  return child;
}

export function setLogLevel(level: LevelWithSilent): void {
  root.level = level;
  for (const child of children.values()) child.level = level;
}
