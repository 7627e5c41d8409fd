import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_FLEET_IDENTITY, startEmbeddedBroker, type EmbeddedBroker } from '../../fleet/broker.js';
import { createTestCa, type CertPair, type TestCa } from './certs.js';
import { ROOT } from './models.js';
import { freePorts, waitForPort } from './net.js';

export { freePort, freePorts } from './net.js';

export const BROKER_START_TIMEOUT_MS = 5_000; // milliseconds until every listener accepts connections
export const BROKER_STOP_TIMEOUT_MS = 3_000; // milliseconds after SIGTERM before SIGKILL
/** The ACL of docs/mosquitto-acl.md, used verbatim: the harness tests the policy operators deploy. */
export const ACL_FILE = join(ROOT, 'docs', 'examples', 'mosquitto-acl.conf');
export const FLEET_IDENTITY = DEFAULT_FLEET_IDENTITY;
const HOST = '127.0.0.1';

export type BrokerKind = 'mosquitto' | 'aedes';

export interface BrokerPorts {
  readonly tcp: number;
  /** TLS with server authentication only (Mosquitto only). */
  readonly tls?: number;
  /** TLS with client certificates: identity = CN, confined by the ACL. */
  readonly mtls: number;
  readonly ws: number;
  /** MQTT over secure WebSockets with client certificates (the embedded broker only: Debian's Mosquitto cannot). */
  readonly wss?: number;
}

export interface TestBroker {
  readonly kind: BrokerKind;
  /** Mosquitto speaks MQTT 5; aedes only 3.1.1. */
  readonly mqtt5: boolean;
  readonly ports: BrokerPorts;
  readonly urls: { readonly tcp: string; readonly tls?: string; readonly mtls: string; readonly ws: string };
  readonly ca: TestCa;
  readonly dir: string;
  /** A client certificate for a thing (or for FLEET_IDENTITY). */
  identity(cn: string): Promise<CertPair>;
  /** Mosquitto's log (empty for aedes), for failure messages. */
  log(): Promise<string>;
  /** Stops (if running) and starts again on the same ports: sessions are gone (persistence is off). */
  restart(): Promise<void>;
  /** SIGKILL: no goodbye to anyone. The broker stays down until restart(). */
  kill(): Promise<void>;
  /** Stops the broker and removes its temporary directory. */
  stop(): Promise<void>;
}

export interface BrokerOptions {
  /** Default: $OUTPOST_TEST_BROKER, else Mosquitto when installed, else aedes. */
  readonly kind?: BrokerKind;
  /** Mosquitto only: this ACL file on the mTLS listener instead of docs/examples/mosquitto-acl.conf. */
  readonly acl?: string;
  /** Mosquitto only: how often it publishes its `$SYS/broker/…` counters (default 10 s); benches count messages. */
  readonly sysIntervalSeconds?: number;
  /** Mosquitto only: `set_tcp_nodelay true` (Nagle off on its sockets; Mosquitto's default is on). */
  readonly tcpNoDelay?: boolean;
}

/** Where Mosquitto is, if anywhere: $OUTPOST_MOSQUITTO when set (a missing path means "absent"), else /usr/sbin. */
export function mosquittoPath(): string | undefined {
  const candidates = process.env.OUTPOST_MOSQUITTO ?? ['/usr/sbin/mosquitto', '/usr/local/sbin/mosquitto'];
  return [candidates].flat().find((path) => path !== '' && existsSync(path));
}

let noticeGiven = false;

/**
 * A real broker on free ports with a fresh CA: Mosquitto (a child process) when installed, otherwise the embedded
 * aedes broker in this process, said so once on stderr. `kind` says which one ran.
 */
export async function startBroker(options: BrokerOptions = {}): Promise<TestBroker> {
  const fromEnv = process.env.OUTPOST_TEST_BROKER;
  if (fromEnv !== undefined && fromEnv !== 'mosquitto' && fromEnv !== 'aedes') {
    throw new Error(`OUTPOST_TEST_BROKER=${fromEnv}: expected mosquitto or aedes`);
  }
  const wanted = options.kind ?? fromEnv;
  const mosquitto = mosquittoPath();
  const kind: BrokerKind = wanted ?? (mosquitto === undefined ? 'aedes' : 'mosquitto');
  if (kind === 'mosquitto' && mosquitto === undefined) throw new Error('Mosquitto is not installed');
  if (kind === 'aedes' && wanted === undefined && !noticeGiven) {
    noticeGiven = true;
    process.stderr.write(
      'broker harness: Mosquitto not found (apt-get install mosquitto); using the embedded aedes broker ' +
        '(MQTT 3.1.1 only: MQTT 5 and Mosquitto ACL tests are skipped)\n',
    );
  }
  const dir = await mkdtemp(join(tmpdir(), 'outpost-broker-'));
  try {
    const ca = await createTestCa(dir);
    return mosquitto !== undefined && kind === 'mosquitto'
      ? await startMosquitto(mosquitto, dir, ca, options.acl ?? ACL_FILE, options)
      : await startAedes(dir, ca);
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
}

function urlsOf(ports: BrokerPorts): TestBroker['urls'] {
  return {
    tcp: `mqtt://${HOST}:${ports.tcp}`,
    // TLS URLs name localhost: the server certificate's SAN, and the SNI an AWS IoT-style client sends.
    tls: ports.tls === undefined ? undefined : `mqtts://localhost:${ports.tls}`,
    mtls: `mqtts://localhost:${ports.mtls}`,
    ws: `ws://${HOST}:${ports.ws}`,
  };
}

/** The generated mosquitto.conf: one listener per transport, the docs' ACL on the mTLS one. */
export function mosquittoConfig(
  ports: Required<Omit<BrokerPorts, 'wss'>>,
  dir: string,
  ca: TestCa,
  acl: string = ACL_FILE,
  tuning: Pick<BrokerOptions, 'sysIntervalSeconds' | 'tcpNoDelay'> = {},
): string {
  const { sysIntervalSeconds } = tuning;
  const tlsFiles = [`cafile ${ca.caPath}`, `certfile ${ca.server.certPath}`, `keyfile ${ca.server.keyPath}`];
  return [
    '# Generated by test/helpers/broker.ts for one test run.',
    // Each listener its own authentication and ACL: the open test listeners must not dilute the mTLS one.
    'per_listener_settings true',
    'persistence false',
    ...(sysIntervalSeconds === undefined ? [] : [`sys_interval ${sysIntervalSeconds}`]),
    ...(tuning.tcpNoDelay === true ? ['set_tcp_nodelay true'] : []),
    `log_dest file ${join(dir, 'mosquitto.log')}`,
    ...['error', 'warning', 'notice', 'information', 'subscribe'].map((type) => `log_type ${type}`),
    'connection_messages true',
    // As root Mosquitto would switch to the "mosquitto" user, who cannot read this private temp dir.
    ...(process.getuid?.() === 0 ? ['user root'] : []),
    '',
    `listener ${ports.tcp} ${HOST}`,
    'allow_anonymous true',
    '',
    `listener ${ports.tls} ${HOST}`,
    'allow_anonymous true',
    ...tlsFiles,
    '',
    `listener ${ports.mtls} ${HOST}`,
    'allow_anonymous false',
    ...tlsFiles,
    'require_certificate true',
    'use_identity_as_username true',
    'use_username_as_clientid true',
    `acl_file ${acl}`,
    '',
    `listener ${ports.ws} ${HOST}`,
    'protocol websockets',
    'allow_anonymous true',
    '',
  ].join('\n');
}

async function startMosquitto(
  binary: string,
  dir: string,
  ca: TestCa,
  acl: string,
  tuning: Pick<BrokerOptions, 'sysIntervalSeconds' | 'tcpNoDelay'>,
): Promise<TestBroker> {
  const [tcp = 0, tls = 0, mtls = 0, ws = 0] = await freePorts(4, HOST);
  const ports = { tcp, tls, mtls, ws };
  const confPath = join(dir, 'mosquitto.conf');
  const logPath = join(dir, 'mosquitto.log');
  await writeFile(confPath, mosquittoConfig(ports, dir, ca, acl, tuning));
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  // A test run that dies without stop() must leave neither a broker nor its keys behind.
  const killOnExit = () => {
    child?.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  };
  process.on('exit', killOnExit);
  const log = () => readFile(logPath, 'utf8').catch(() => '');

  const start = async () => {
    let stderr = '';
    let exit: string | undefined;
    const proc = spawn(binary, ['-c', confPath], { stdio: ['ignore', 'ignore', 'pipe'] });
    child = proc;
    proc.stderr.on('data', (chunk: Buffer) => {
      stderr = (stderr + chunk.toString()).slice(-4096);
    });
    exited = new Promise((resolve) => {
      proc.once('exit', (code, signal) => {
        exit = `exited with ${signal ?? String(code)}`;
        resolve();
      });
    });
    const abort = () => (exit === undefined ? undefined : new Error(`mosquitto ${exit}: ${stderr.trim()}`));
    try {
      for (const port of [tcp, tls, mtls, ws]) await waitForPort(port, HOST, BROKER_START_TIMEOUT_MS, abort);
    } catch (error) {
      proc.kill('SIGKILL');
      throw new Error(`${(error as Error).message}\n${await log()}`, { cause: error });
    }
  };
  const halt = async (signal: NodeJS.Signals) => {
    const proc = child;
    if (proc === undefined || proc.exitCode !== null || proc.signalCode !== null) return;
    proc.kill(signal);
    const timer = setTimeout(() => proc.kill('SIGKILL'), BROKER_STOP_TIMEOUT_MS);
    await exited;
    clearTimeout(timer);
  };

  await start();
  return {
    kind: 'mosquitto',
    mqtt5: true,
    ports,
    urls: urlsOf(ports),
    ca,
    dir,
    identity: (cn) => ca.client(cn),
    log,
    restart: async () => {
      await halt('SIGTERM');
      await start();
    },
    kill: () => halt('SIGKILL'),
    stop: async () => {
      await halt('SIGTERM');
      process.off('exit', killOnExit);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

async function startAedes(dir: string, ca: TestCa): Promise<TestBroker> {
  const [tcp = 0, mtls = 0, ws = 0, wss = 0] = await freePorts(4, HOST);
  const ports = { tcp, mtls, ws, wss };
  const options = {
    host: HOST,
    port: tcp,
    wsPort: ws,
    tls: { cert: ca.server.cert, key: ca.server.key, ca: ca.ca, port: mtls, wssPort: wss },
  };
  let broker: EmbeddedBroker | undefined = await startEmbeddedBroker(options);
  const halt = async (force: boolean) => {
    await broker?.close({ force });
    broker = undefined;
  };
  return {
    kind: 'aedes',
    mqtt5: false,
    ports,
    urls: urlsOf(ports),
    ca,
    dir,
    identity: (cn) => ca.client(cn),
    log: () => Promise.resolve(''),
    restart: async () => {
      await halt(false);
      broker = await startEmbeddedBroker(options);
    },
    kill: () => halt(true),
    stop: async () => {
      await halt(false);
      await rm(dir, { recursive: true, force: true });
    },
  };
}
