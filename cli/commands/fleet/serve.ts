import type { Command } from 'commander';
import { stderr } from 'node:process';
import { DEFAULT_API_PORT, DB_URL_FORMS, defaultDbUrl, serveFleet, type FleetTls } from '../../../fleet/index.js';
import { readTokenFile } from '../../../runtime/server/http/index.js';
import { collect, parseNonNegativeInt } from '../../options.js';
import { FLEET_TOKEN_FILE_ENV } from './client.js';

interface ServeOptions {
  broker: string;
  ca?: string;
  cert?: string;
  key?: string;
  db?: string;
  dataDir: string;
  httpHost: string;
  httpPort: number;
  tokenFile?: string;
  trustKey?: string[];
  shareGroup?: string;
  workerId?: string;
}

export const DEFAULT_FLEET_DATA_DIR = 'outpost-fleet';

/**
 * `outpost fleet serve`: runs until SIGTERM or SIGINT, then drains (requests taken are answered) and exits 0 —
 * what systemd's `KillSignal=SIGTERM` expects. Readiness is one line on stderr with the API's URL.
 */
async function run(opts: ServeOptions): Promise<void> {
  const tls: FleetTls | undefined =
    opts.ca === undefined && opts.cert === undefined && opts.key === undefined
      ? undefined
      : {
          ...(opts.ca === undefined ? {} : { ca: opts.ca }),
          ...(opts.cert === undefined ? {} : { cert: opts.cert }),
          ...(opts.key === undefined ? {} : { key: opts.key }),
        };
  const tokenFile = opts.tokenFile ?? process.env[FLEET_TOKEN_FILE_ENV];
  const token = tokenFile === undefined || tokenFile === '' ? undefined : await readTokenFile(tokenFile);
  const fleet = await serveFleet({
    brokerUrl: opts.broker,
    dataDir: opts.dataDir,
    db: opts.db ?? defaultDbUrl(opts.dataDir),
    http: { host: opts.httpHost, port: opts.httpPort, ...(token === undefined ? {} : { token }) },
    ...(tls === undefined ? {} : { tls }),
    ...(opts.trustKey === undefined ? {} : { trustedKeys: opts.trustKey }),
    ...(opts.shareGroup === undefined ? {} : { shareGroup: opts.shareGroup }),
    ...(opts.workerId === undefined ? {} : { workerId: opts.workerId }),
  });
  stderr.write(
    `fleet serving ${fleet.url} (database ${fleet.store.dialect} ${fleet.store.location}, worker ${fleet.service.workerId})\n`,
  );
  await new Promise<void>((resolve) => {
    const stop = () => {
      process.off('SIGTERM', stop);
      process.off('SIGINT', stop);
      stderr.write('fleet stopping: answering requests in flight\n');
      resolve();
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
  });
  await fleet.close();
}

export function register(fleet: Command): void {
  fleet
    .command('serve')
    .description('run the fleet service: registry, deployments, IoT Jobs + streams for every device, HTTP API')
    .requiredOption('--broker <url>', 'MQTT broker (mqtt://, mqtts://, ws://, wss://)')
    .option('--ca <pem>', 'CA certificate to verify the broker')
    .option('--cert <pem>', 'client certificate (mTLS)')
    .option('--key <pem>', 'client key (mTLS)')
    .option('--db <url>', `database: ${DB_URL_FORMS} (default sqlite:<data-dir>/fleet.db)`)
    .option('--data-dir <dir>', 'artifact store, uploads and the default SQLite file', DEFAULT_FLEET_DATA_DIR)
    .option('--http-host <host>', 'API address (keep it on loopback unless a proxy fronts it)', '127.0.0.1')
    .option('--http-port <port>', 'API port (0: any free one)', parseNonNegativeInt, DEFAULT_API_PORT)
    .option('--token-file <file>', `bearer token the API requires (default $${FLEET_TOKEN_FILE_ENV})`)
    .option(
      '--trust-key <pem>',
      'public key whose artifact signatures are trusted; signatures then required (repeatable)',
      collect,
    )
    .option('--share-group <name>', 'MQTT 5 shared subscription group: workers of one fleet share it', 'outpost-fleet')
    .option('--worker-id <id>', 'this worker, in logs and client ids (default host-pid)')
    .action(run);
}
