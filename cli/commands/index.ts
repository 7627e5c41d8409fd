import type { Command } from 'commander';
import { register as agent } from './agent.js';
import { register as bench } from './bench.js';
import { register as broker } from './broker.js';
import { register as compile } from './compile.js';
import { register as demo } from './demo.js';
import { register as deploy } from './deploy.js';
import { register as inspect } from './inspect.js';
import { register as keygen } from './keygen.js';
import { register as run } from './run.js';
import { register as targets } from './targets.js';

/** Every subcommand, in the order `outpost --help` lists them. */
export const COMMANDS: readonly ((program: Command) => void)[] = Object.freeze([
  compile,
  targets,
  inspect,
  run,
  bench,
  keygen,
  broker,
  agent,
  deploy,
  demo,
]);
