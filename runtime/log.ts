import { pino, type Logger, type LevelWithSilent } from 'pino';

/**
 * Outpost logs through pino to stderr (stdout belongs to command output). The level comes from `OUTPOST_LOG_LEVEL`
 * or from `setLogLevel()` (the CLI's `--verbose`/`--quiet`). Components take a child logger named after themselves.
 */
const root: Logger = pino(
  {
    name: 'outpost',
    level: process.env.OUTPOST_LOG_LEVEL ?? 'info',
    base: { pid: process.pid },
    redact: { paths: ['*.privateKey', '*.key', '*.password', '*.token', 'config.tls.key'], censor: '[redacted]' },
  },
  pino.destination({ fd: 2, sync: true }),
);

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

export function logLevel(): string {
  return root.level;
}
