import { join, resolve } from 'node:path';
import { OUTPOST_VERSION } from '../../runtime/version.js';
import { ApiServer, type ApiServerOptions } from '../api/server.js';
import type { FleetTls } from '../mqtt.js';
import { type KyselyStore, openStore } from '../store/index.js';
import { FleetService, type FleetServiceOptions } from './service.js';

/** `outpost fleet serve` as a library call: the database, the worker and the HTTP API, started and stopped together. */
export interface ServeFleetOptions {
  readonly brokerUrl: string;
  readonly tls?: FleetTls;
  readonly dataDir: string;
  /** Default `sqlite:<dataDir>/fleet.db`. */
  readonly db?: string;
  readonly http?: ApiServerOptions;
  readonly trustedKeys?: readonly string[];
  readonly shareGroup?: string;
  readonly workerId?: string;
  readonly sweeper?: FleetServiceOptions['sweeper'];
  readonly rollouts?: FleetServiceOptions['rollouts'];
  /** The service's clock (tests move it past timeouts); default Date.now. */
  readonly now?: () => number;
}

export interface RunningFleet {
  readonly service: FleetService;
  readonly store: KyselyStore;
  readonly url: string;
  /** Drains (requests taken are answered), then stops the API, the worker and the database. */
  close(): Promise<void>;
}

export function defaultDbUrl(dataDir: string): string {
  return `sqlite:${join(resolve(dataDir), 'fleet.db')}`;
}

export async function serveFleet(options: ServeFleetOptions): Promise<RunningFleet> {
  const store = await openStore({ url: options.db ?? defaultDbUrl(options.dataDir) });
  let service: FleetService;
  try {
    service = await FleetService.start({
      brokerUrl: options.brokerUrl,
      store,
      dataDir: options.dataDir,
      ...(options.tls === undefined ? {} : { tls: options.tls }),
      ...(options.trustedKeys === undefined ? {} : { trustedKeys: options.trustedKeys }),
      ...(options.shareGroup === undefined ? {} : { shareGroup: options.shareGroup }),
      ...(options.workerId === undefined ? {} : { workerId: options.workerId }),
      ...(options.sweeper === undefined ? {} : { sweeper: options.sweeper }),
      ...(options.rollouts === undefined ? {} : { rollouts: options.rollouts }),
      ...(options.now === undefined ? {} : { now: options.now }),
    });
  } catch (error) {
    await store.close();
    throw error;
  }
  const api = new ApiServer(
    {
      store,
      operations: service.operations,
      inference: service.inference,
      now: options.now ?? Date.now,
      health: () => ({
        ok: service.connected,
        worker: service.workerId,
        version: OUTPOST_VERSION,
        database: { dialect: store.dialect, location: store.location },
        broker: { connected: service.connected, mqtt: service.protocolVersion === 5 ? '5' : '3.1.1' },
        workers: { mode: service.ownership.mode, live: service.ownership.workers },
        stats: service.stats(),
        memory: { rssBytes: process.memoryUsage.rss(), heapUsedBytes: process.memoryUsage().heapUsed },
      }),
    },
    options.http,
  );
  let url: string;
  try {
    url = (await api.listen()).url;
  } catch (error) {
    await service.close();
    await store.close();
    throw error;
  }
  let closing: Promise<void> | undefined;
  return {
    service,
    store,
    url,
    close: () =>
      (closing ??= (async () => {
        await api.close();
        await service.close();
        await store.close();
      })()),
  };
}
