import type { Command } from 'commander';

type Register = (program: Command) => void;

/**
 * Every subcommand, in the order `outpost --help` lists them, loaded on demand: `outpost agent` on a Pi should not
 * pay at start-up for the compiler, sharp and the fleet side (and their memory), only for what it runs.
 */
const COMMANDS: Readonly<Record<string, () => Promise<{ register: Register }>>> = Object.freeze({
  compile: () => import('./compile.js'),
  pipeline: () => import('./pipeline.js'),
  targets: () => import('./targets.js'),
  inspect: () => import('./inspect.js'),
  run: () => import('./run.js'),
  batch: () => import('./batch.js'),
  bench: () => import('./bench.js'),
  tune: () => import('./tune.js'),
  serve: () => import('./serve.js'),
  capture: () => import('./capture.js'),
  keygen: () => import('./keygen.js'),
  sign: () => import('./sign.js'),
  agent: () => import('./agent.js'),
  'install-service': () => import('./install-service.js'),
  deploy: () => import('./deploy.js'),
  fleet: () => import('./fleet/index.js'),
  broker: () => import('./broker.js'),
  demo: () => import('./demo.js'),
});

/** Registers the command named in `argv` (its first non-option word), or every command when none is (help). */
export async function registerCommands(program: Command, argv: readonly string[]): Promise<void> {
  const named = argv.slice(2).find((arg) => !arg.startsWith('-'));
  const load = named === undefined ? undefined : COMMANDS[named];
  const loaders = load === undefined ? Object.values(COMMANDS) : [load];
  for (const loader of loaders) (await loader()).register(program);
}
