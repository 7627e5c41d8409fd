import type { Command } from 'commander';
import { register as bench } from './bench.js';
import { register as demo } from './demo.js';
import { register as inspect } from './inspect.js';
import { register as run } from './run.js';

/** Every subcommand, in the order `outpost --help` lists them. */
export const COMMANDS: readonly ((program: Command) => void)[] = Object.freeze([inspect, run, bench, demo]);
