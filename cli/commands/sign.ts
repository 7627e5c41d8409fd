import type { Command } from 'commander';
import { signArtifact } from '../../runtime/artifact/index.js';
import { print, printJson } from '../output.js';

interface SignOptions {
  signKey: string;
  json?: boolean;
}

/**
 * `outpost sign <artifact> --sign-key <key>`: signs (or re-signs) an existing artifact directory or .tar.gz. Only
 * manifest.sig changes; the artifact is verified first, so a signature never covers files that do not match.
 */
async function sign(artifact: string, opts: SignOptions): Promise<void> {
  const result = await signArtifact(artifact, opts.signKey);
  if (opts.json === true) {
    printJson(result);
    return;
  }
  const before = result.previousKeyId === undefined ? 'was unsigned' : `replaces key ${result.previousKeyId}`;
  print(`signed ${result.path} with key ${result.keyId} (${before})`);
}

export function register(program: Command): void {
  program
    .command('sign')
    .description('sign (or re-sign) an existing artifact: only manifest.sig changes')
    .argument('<artifact>', 'artifact directory or .tar.gz')
    .requiredOption('--sign-key <key>', 'ed25519 private key (see `outpost keygen`)')
    .option('--json', 'print JSON: { path, keyId, previousKeyId }')
    .action(sign);
}
