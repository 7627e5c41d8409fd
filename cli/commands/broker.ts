import type { Command } from 'commander';
import { OutpostError } from '../../runtime/errors.js';
import {
  DEFAULT_FLEET_IDENTITY,
  DEFAULT_MQTTS_PORT,
  DEFAULT_MQTT_PORT,
  startEmbeddedBroker,
  type EmbeddedBrokerTls,
} from '../../fleet/index.js';
import { parseNonNegativeInt } from '../options.js';
import { print, printJson } from '../output.js';

interface BrokerOptions {
  port: number;
  host: string;
  wsPort?: number;
  tlsCert?: string;
  tlsKey?: string;
  ca?: string;
  tlsPort: number;
  wssPort?: number;
  json?: boolean;
}

/**
 * `outpost broker`: the embedded MQTT broker (aedes), the zero-infrastructure default for one machine and demos.
 * Runs until SIGINT/SIGTERM, then disconnects its clients and exits 0.
 */
async function broker(opts: BrokerOptions): Promise<void> {
  if ((opts.tlsCert === undefined) !== (opts.tlsKey === undefined)) {
    throw new OutpostError('INVALID_ARGUMENT', '--tls-cert and --tls-key go together (the server certificate and key)');
  }
  if (opts.wssPort !== undefined && opts.tlsCert === undefined) {
    throw new OutpostError('INVALID_ARGUMENT', '--wss-port (secure WebSockets) needs --tls-cert and --tls-key');
  }
  if (opts.ca !== undefined && opts.tlsCert === undefined) {
    throw new OutpostError('INVALID_ARGUMENT', '--ca (client certificates) needs --tls-cert and --tls-key');
  }
  const tls: EmbeddedBrokerTls | undefined =
    opts.tlsCert !== undefined && opts.tlsKey !== undefined
      ? { cert: opts.tlsCert, key: opts.tlsKey, ca: opts.ca, port: opts.tlsPort, wssPort: opts.wssPort }
      : undefined;
  const running = await startEmbeddedBroker({ host: opts.host, port: opts.port, wsPort: opts.wsPort, tls });
  if (opts.json === true) {
    printJson({ urls: running.urls, ports: running.ports, mqttVersions: ['3.1.1'] });
  } else {
    print('outpost broker (embedded, aedes; MQTT 3.1.1) listening on');
    for (const url of running.urls) {
      const mtls = (url.startsWith('mqtts:') || url.startsWith('wss:')) && opts.ca !== undefined;
      print(`  ${url}${mtls ? `  (client certificates: CN = thing name; ${DEFAULT_FLEET_IDENTITY} may use all)` : ''}`);
    }
    print('MQTT 5 clients (the aws-iot transport) need Mosquitto or AWS IoT Core; Ctrl-C stops.');
  }
  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  await running.close();
  if (opts.json !== true) print(`stopped (${signal})`);
}

export function register(program: Command): void {
  program
    .command('broker')
    .description('run the embedded MQTT broker (aedes): no infrastructure, one machine, demos')
    .option('--port <port>', `MQTT over TCP (0: any free port)`, parseNonNegativeInt, DEFAULT_MQTT_PORT)
    .option('--host <address>', 'address to listen on (0.0.0.0: every interface)', '127.0.0.1')
    .option('--ws-port <port>', 'also serve MQTT over WebSockets on this port', parseNonNegativeInt)
    .option('--tls-cert <pem>', 'server certificate: also serve MQTT over TLS (with --tls-key)')
    .option('--tls-key <pem>', 'server private key')
    .option('--ca <pem>', 'CA of device certificates: require them on the TLS port (mTLS), CN = thing name')
    .option('--tls-port <port>', 'MQTT over TLS', parseNonNegativeInt, DEFAULT_MQTTS_PORT)
    .option('--wss-port <port>', 'also MQTT over secure WebSockets, same certificates and rules', parseNonNegativeInt)
    .option('--json', 'print where it listens as JSON')
    .action(broker);
}
