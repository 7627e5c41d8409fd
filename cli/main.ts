#!/usr/bin/env node
import os from 'node:os';
import { Command, CommanderError } from 'commander';
import { isOutpostError, messageOf } from '../runtime/errors.js';
import { OUTPOST_VERSION } from '../runtime/version.js';
import { cliFlags, setFlags } from './context.js';
import { registerCommands } from './commands/index.js';

const program = new Command('outpost')
  .description('Compile ONNX models for edge devices, deliver them over MQTT, and serve them locally.')
  .version(OUTPOST_VERSION)
  .option('-v, --verbose', 'log debug detail and ONNX Runtime warnings to stderr')
  .option('-q, --quiet', 'log only errors')
  .option('--debug', 'print stack traces with errors')
  // Usage errors are reported like every other error (report() below): one line, `outpost: … [INVALID_ARGUMENT]`.
  // Subcommands inherit both settings (they are registered after this).
  .exitOverride()
  .configureOutput({ outputError: () => undefined })
  .hook('preAction', (command) => {
    const opts = command.optsWithGlobals<{ verbose?: boolean; quiet?: boolean; debug?: boolean }>();
    setFlags({ verbose: opts.verbose === true, quiet: opts.quiet === true, debug: opts.debug === true });
  });

await registerCommands(program, process.argv);

// `outpost inspect … | head`: a closed pipe ends the command quietly, as Unix tools do.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code === 'EPIPE') process.exit(0);
  throw error;
});

/** One line per error, naming the code; `--debug` adds the stack and causes. */
function report(error: unknown): number {
  if (error instanceof CommanderError) {
    // --help, --version and a bare `outpost` (help on stderr) end through here too, having printed what they print.
    if (error.exitCode === 0 || error.code === 'commander.help') return error.exitCode;
    process.stderr.write(`outpost: ${error.message.replace(/^error: /, '')} (see --help) [INVALID_ARGUMENT]\n`);
    return 1;
  }
  const code = isOutpostError(error) ? error.code : 'INTERNAL';
  // Interrupted by a signal: the shell's convention, 128 + its number (130 for SIGINT, 143 for SIGTERM).
  const signal = isOutpostError(error, 'INTERRUPTED') ? error.details.signal : undefined;
  // One line, whatever the message: libraries (sharp, ONNX Runtime) put newlines in theirs.
  process.stderr.write(`outpost: ${messageOf(error).replace(/\s*\n\s*/g, ' ')} [${code}]\n`);
  if (cliFlags().debug || process.argv.includes('--debug')) {
    let cause: unknown = error;
    while (cause instanceof Error) {
      process.stderr.write(`${cause.stack ?? cause.message}\n`);
      cause = cause.cause;
      if (cause !== undefined) process.stderr.write('caused by: ');
    }
  }
  return typeof signal === 'string' ? 128 + os.constants.signals[signal as NodeJS.Signals] : 1;
}

try {
  await program.parseAsync(process.argv);
} catch (error) {
  process.exitCode = report(error);
}
