import { readFile } from 'node:fs/promises';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { createServer as createNetServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer, TLSSocket, type PeerCertificate } from 'node:tls';
import { Aedes, type Client } from 'aedes';
import { WebSocketServer, createWebSocketStream } from 'ws';
import { OutpostError, fromFsError, messageOf } from '../runtime/errors.js';
import { logger } from '../runtime/log.js';

const log = logger('fleet.broker');

export const DEFAULT_MQTT_PORT = 1883; // IANA "mqtt"
export const DEFAULT_MQTTS_PORT = 8883; // IANA "secure-mqtt"
/** The certificate CN of the fleet service: on the mTLS listener it may use every device's topics. */
export const DEFAULT_FLEET_IDENTITY = 'outpost-fleet';

export interface EmbeddedBrokerTls {
  /** Server certificate and key: PEM text or file paths. */
  readonly cert: string;
  readonly key: string;
  /** CA that signs device certificates: with it, clients must present one (mTLS) and are confined to their topics. */
  readonly ca?: string;
  readonly port?: number; // default 8883; 0 picks a free port
  /** Also MQTT over secure WebSockets (wss://) with the same certificates and rules; off unless given; 0: free port. */
  readonly wssPort?: number;
  /** Certificate CNs with access to every device's topics (default: outpost-fleet). */
  readonly fleetIdentities?: readonly string[];
}

export interface EmbeddedBrokerOptions {
  readonly host?: string; // default 127.0.0.1: nothing outside this machine reaches a broker nobody configured
  readonly port?: number; // MQTT over TCP, default 1883; 0 picks a free port
  readonly wsPort?: number; // MQTT over WebSockets, off unless given; 0 picks a free port
  readonly tls?: EmbeddedBrokerTls;
}

export interface EmbeddedBroker {
  readonly host: string;
  readonly ports: Readonly<{ mqtt: number; ws?: number; mqtts?: number; wss?: number }>;
  /** mqtt://…, then ws://…, mqtts://… and wss://… when those listeners are on. */
  readonly urls: readonly string[];
  readonly url: string;
  /** Clients connected now. */
  clients(): number;
  /** Stops listening and disconnects everyone; `force` drops sockets without a goodbye (a crash, for tests). */
  close(options?: { force?: boolean }): Promise<void>;
}

/**
 * The zero-infrastructure broker (aedes, in this process): one machine, demos, tests. It speaks MQTT 3.1.1 (aedes
 * has no MQTT 5), which the MQTT.js transport falls back to by itself; fleets beyond one machine use Mosquitto,
 * EMQX or AWS IoT Core (docs/architecture.md, "Protocols": Outpost never implements its own broker cluster).
 *
 * On the mTLS listener a client's identity is its certificate's CN: the client id must equal it, and a device may use
 * only `$aws/things/{CN}/…` and `outpost/things/{CN}/…` — the policy of docs/mosquitto-acl.md. The plain TCP and
 * WebSocket listeners are unauthenticated and unrestricted: keep them on localhost.
 */
export async function startEmbeddedBroker(options: EmbeddedBrokerOptions = {}): Promise<EmbeddedBroker> {
  const host = options.host ?? '127.0.0.1';
  const fleet = new Set(options.tls?.fleetIdentities ?? [DEFAULT_FLEET_IDENTITY]);
  const aedes = await Aedes.createBroker({
    authenticate: (client, _username, _password, done) => {
      const cn = identityOf(client);
      if (cn === undefined || cn === client.id) {
        done(null, true);
        return;
      }
      // [MQTT 3.1.1 §3.2.2.3] 0x02 Identifier rejected: a certificate may speak only for its own thing.
      const message = `client id ${client.id} is not the certificate's CN ${cn}`;
      // aedes types the return codes as an ambient const enum, which isolatedModules cannot name: widen `done`.
      const refuse = done as (error: Error & { returnCode: number }, success: false) => void;
      refuse(Object.assign(new Error(message), { returnCode: 2 }), false);
    },
    authorizePublish: (client, packet, done) => {
      const cn = client === null ? undefined : identityOf(client);
      if (packet.topic.startsWith('$SYS/')) {
        done(new Error('$SYS/ topics are reserved')); // aedes' default rule
      } else if (cn === undefined || fleet.has(cn) || ownsTopic(cn, packet.topic)) {
        done(null);
      } else {
        // MQTT 3.1.1 cannot refuse a PUBLISH; the connection is closed instead [MQTT-3.3.5-2].
        done(new Error(`${cn} may not publish to ${packet.topic}`));
      }
    },
    authorizeSubscribe: (client, subscription, done) => {
      const cn = identityOf(client);
      const allowed = cn === undefined || fleet.has(cn) || ownsTopic(cn, subscription.topic);
      done(null, allowed ? subscription : null); // null: SUBACK failure 0x80 [MQTT 3.1.1 §3.9.3]
    },
  });
  const sockets = new Set<Socket>();
  const servers: (Server | HttpServer)[] = [];
  const track = (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  };
  let wss: WebSocketServer | undefined;
  const wsServers: WebSocketServer[] = [];

  const close = async ({ force = false }: { force?: boolean } = {}): Promise<void> => {
    if (force) for (const socket of sockets) socket.destroy();
    for (const server of [...(wss === undefined ? [] : [wss]), ...wsServers]) {
      server.close();
      for (const client of server.clients) client.terminate();
    }
    await new Promise<void>((resolve) => {
      aedes.close(() => {
        resolve();
      });
    });
    for (const socket of sockets) socket.destroy();
    await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
  };

  try {
    const tcp = createNetServer((socket) => {
      track(socket);
      aedes.handle(socket);
    });
    servers.push(tcp);
    const ports: { mqtt: number; ws?: number; mqtts?: number; wss?: number } = {
      mqtt: await listen(tcp, options.port ?? DEFAULT_MQTT_PORT, host, 'MQTT'),
    };
    const urls = [`mqtt://${host}:${ports.mqtt}`];
    if (options.wsPort !== undefined) {
      const http = createHttpServer();
      http.on('connection', track);
      servers.push(http);
      wss = new WebSocketServer({ server: http });
      wss.on('connection', (socket, request) => {
        aedes.handle(createWebSocketStream(socket), request);
      });
      ports.ws = await listen(http, options.wsPort, host, 'WebSocket');
      urls.push(`ws://${host}:${ports.ws}`);
    }
    if (options.tls !== undefined) {
      const mtls = options.tls.ca !== undefined;
      const [cert, key, ca] = await Promise.all([options.tls.cert, options.tls.key, options.tls.ca].map(readPemOption));
      // requestCert + rejectUnauthorized: the TLS handshake itself refuses clients without a certificate from `ca`.
      const secure = createTlsServer({ cert, key, ca, requestCert: mtls, rejectUnauthorized: mtls }, (socket) => {
        aedes.handle(socket);
      });
      secure.on('connection', track);
      secure.on('tlsClientError', (error) => {
        log.debug({ err: error }, 'TLS handshake failed');
      });
      servers.push(secure);
      ports.mqtts = await listen(secure, options.tls.port ?? DEFAULT_MQTTS_PORT, host, 'MQTT over TLS');
      urls.push(`mqtts://${host}:${ports.mqtts}`);
      if (options.tls.wssPort !== undefined) {
        // The same handshake rules; the client's certificate is read from the upgrade request's TLS socket.
        const https = createHttpsServer({ cert, key, ca, requestCert: mtls, rejectUnauthorized: mtls });
        https.on('connection', track);
        https.on('tlsClientError', (error) => {
          log.debug({ err: error }, 'TLS handshake failed (WebSocket)');
        });
        servers.push(https);
        const secureWs = new WebSocketServer({ server: https });
        wsServers.push(secureWs);
        secureWs.on('connection', (socket, request) => {
          aedes.handle(createWebSocketStream(socket), request);
        });
        ports.wss = await listen(https, options.tls.wssPort, host, 'MQTT over secure WebSockets');
        urls.push(`wss://${host}:${ports.wss}`);
      }
    }
    log.info({ urls }, 'embedded broker listening');
    return {
      host,
      ports,
      urls,
      url: urls[0] ?? `mqtt://${host}:${ports.mqtt}`,
      clients: () => aedes.connectedClients,
      close,
    };
  } catch (error) {
    await close({ force: true });
    throw error;
  }
}

/** A thing's own topic space; a filter with a wildcard before the thing segment is not its own. */
function ownsTopic(thing: string, topic: string): boolean {
  if (/[+#/]/.test(thing) || thing === '') return false;
  return [`$aws/things/${thing}`, `outpost/things/${thing}`].some((p) => topic === p || topic.startsWith(`${p}/`));
}

/** The CN of the client's certificate on the mTLS listener; undefined on the other listeners. */
/**
 * The certificate CN a client connected with, read once and remembered: the broker also asks when the connection
 * is already gone (publishing its last will), when the socket can no longer say.
 */
const identities = new WeakMap<Client, string | undefined>();

function identityOf(client: Client): string | undefined {
  if (identities.has(client)) return identities.get(client);
  const cn = peerCn(client);
  identities.set(client, cn);
  return cn;
}

function peerCn(client: Client): string | undefined {
  // MQTT over TLS: the connection is the TLS socket; over wss: the upgrade request's socket is.
  const tls = client.conn instanceof TLSSocket ? client.conn : client.req?.socket;
  if (!(tls instanceof TLSSocket)) return undefined;
  // Without a client certificate (a TLS listener without `ca`) the peer certificate is an empty object. Once the
  // socket is closed it is null: an identity that owns nothing (fail closed), though CONNECT has cached the real one.
  const peer = tls.getPeerCertificate() as Partial<PeerCertificate> | null;
  if (peer === null) return '';
  const cn: string | string[] | undefined = peer.subject?.CN;
  return Array.isArray(cn) ? cn[0] : cn;
}

function listen(server: Server | HttpServer, port: number, host: string, what: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (error: NodeJS.ErrnoException) => {
      const why = error.code === 'EADDRINUSE' ? 'the port is in use' : messageOf(error);
      reject(
        new OutpostError('BROKER_START_FAILED', `cannot listen for ${what} on ${host}:${port}: ${why}`, {
          cause: error,
          details: { host, port },
        }),
      );
    };
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

async function readPemOption(value: string | undefined): Promise<string | undefined> {
  if (value === undefined || value.includes('-----BEGIN ')) return value;
  try {
    return await readFile(value, 'utf8');
  } catch (error) {
    throw fromFsError(error, value, 'read');
  }
}
