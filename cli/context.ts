import { setLogLevel } from '../runtime/log.js';

/** Process-wide CLI flags, set once by main.ts from the global options before a command runs. */
export interface CliFlags {
  readonly verbose: boolean;
  readonly quiet: boolean;
  readonly debug: boolean;
}

let flags: CliFlags = { verbose: false, quiet: false, debug: false };

export function setFlags(next: CliFlags): void {
  flags = next;
  // Commands print their results; logs on stderr are for trouble (warn), or everything with --verbose.
  setLogLevel(next.verbose ? 'debug' : next.quiet ? 'error' : 'warn');
}

export function cliFlags(): CliFlags {
  return flags;
}

/** ONNX Runtime's own log noise is off (errors reach the user as OutpostErrors) unless --verbose asks for warnings. */
export function ortLogLevel(): 'warning' | 'fatal' {
  return flags.verbose ? 'warning' : 'fatal';
}
