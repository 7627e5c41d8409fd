import type { Command } from 'commander';
import type { BackendName } from '../../runtime/backends/index.js';
import type { LoadOptions } from '../../runtime/model/index.js';
import { ortLogLevel } from '../context.js';
import { choice, collect, parseInputShape } from '../options.js';

/** Options every command that loads a model shares. */
export interface ModelOptions {
  backend?: BackendName | 'auto';
  variant?: string;
  inputShape?: Record<string, number[]>;
  threads?: number;
  trustKey?: string[];
  json?: boolean;
}

export function addModelOptions(command: Command, backends: readonly string[] = ['auto', 'native', 'wasm']): Command {
  return command
    .option('--backend <name>', `backend: ${backends.join(', ')}`, choice(backends))
    .option('--variant <id>', 'artifact variant to load (default: best ranked the backend can run)')
    .option('--input-shape <name=d0,d1,…>', "bind an input's symbolic dimensions (repeatable)", parseInputShape)
    .option('--threads <n>', "intra-op threads (default: backend's choice)", Number)
    .option(
      '--trust-key <pem>',
      'public key whose artifact signatures are trusted; signatures then required (repeatable)',
      collect,
    )
    .option('--json', 'print JSON');
}

export function loadOptions(opts: ModelOptions): LoadOptions {
  return {
    backend: opts.backend === 'auto' ? undefined : opts.backend,
    variant: opts.variant,
    shapes: opts.inputShape,
    threads: opts.threads,
    trustedKeys: opts.trustKey,
    ortLogLevel: ortLogLevel(),
  };
}
