import type { Command } from 'commander';
import { PRIVATE_KEY_FILE, PUBLIC_KEY_FILE, writeSigningKeys } from '../../runtime/artifact/index.js';
import { OutpostError, isOutpostError } from '../../runtime/errors.js';
import { print, printJson } from '../output.js';

interface KeygenOptions {
  output: string;
  force?: boolean;
  json?: boolean;
}

/**
 * `outpost keygen -o <dir>`: an ed25519 signing key pair for artifacts. The private key is written 0600 and never
 * replaced without --force: devices that trust its public half would reject everything signed by a new one.
 */
async function keygen(opts: KeygenOptions): Promise<void> {
  let written;
  try {
    written = await writeSigningKeys(opts.output, { overwrite: opts.force === true });
  } catch (error) {
    if (isOutpostError(error, 'OUTPUT_UNWRITABLE') && error.message.includes('already exists')) {
      throw new OutpostError('OUTPUT_UNWRITABLE', `${error.message} (pass --force to replace it)`, {
        cause: error,
        details: error.details,
      });
    }
    throw error;
  }
  if (opts.json === true) {
    printJson(written);
    return;
  }
  print(`key id       ${written.keyId}`);
  print(`private key  ${written.privateKeyPath}  (mode 0600: sign with it, keep it secret)`);
  print(`public key   ${written.publicKeyPath}  (give it to devices and to --trust-key)`);
}

export function register(program: Command): void {
  program
    .command('keygen')
    .description(`create an artifact signing key pair: ${PRIVATE_KEY_FILE} (private, 0600) and ${PUBLIC_KEY_FILE}`)
    .requiredOption('-o, --output <dir>', 'directory for the key files (created if missing)')
    .option('--force', 'replace an existing key pair in <dir>')
    .option('--json', 'print JSON')
    .action(keygen);
}
