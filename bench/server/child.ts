/**
 * The inference server as server.ts runs it, wired the way `outpost serve` wires it: one ServerMetrics, its
 * observer on every service, its batch observer on the batching scheduler, the repository watched for the gauges,
 * and `GET /metrics` served from it. `serve()` is used in-process by the latency benches; run as a child process
 * (`fork`, config as the one argument) it serves one model for the throughput and load benches, so that the load
 * generator and the server get a core each and the child's RSS is the server's alone.
 *
 * Child protocol (IPC): the child sends `{ type: 'ready', url, rss }` once listening; it answers `{ type: 'rss', gc }`
 * with `{ type: 'rss', rss, heapUsed }` (after a full garbage collection when `gc`: the child runs with --expose-gc, so that
 * garbage not yet collected is not mistaken for a leak) and `{ type: 'stop' }` by closing, releasing the model and
 * exiting.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { batchingScheduler } from '../../runtime/server/scheduling/batching.js';
import { ServerMetrics } from '../../runtime/server/metrics/prometheus.js';
import { StaticRepository } from '../../runtime/server/serving/model-repository.js';
import { directScheduler } from '../../runtime/server/scheduling/direct.js';
import { InferenceServer } from '../../runtime/server/http/server.js';
import { loadModel } from '../../runtime/model/load.js';
import type { Model } from '../../runtime/model/model.js';
import { setLogLevel } from '../../runtime/log.js';

export type SchedulerKind = 'direct' | 'batching';

export interface BatchingConfig {
  readonly maxBatchSize: number; // rows
  readonly maxQueueDelayMs: number; // ms
}

/** Where one InferenceServer listens: a free loopback TCP port, or a unix socket. */
export type Listen = { readonly tcp: true } | { readonly socket: string };

export interface Served {
  /** One URL per `listen` entry, in order: `http://127.0.0.1:port` or `unix:/path`. */
  readonly urls: readonly string[];
  readonly metrics: ServerMetrics;
  readonly repository: StaticRepository;
  close(): Promise<void>;
}

/** Serves `models` (one repository, several listeners on it) with metrics wired as `outpost serve` wires them. */
export async function serve(
  models: readonly Model[],
  scheduler: SchedulerKind,
  batching: BatchingConfig,
  listen: readonly Listen[],
): Promise<Served> {
  const metrics = new ServerMetrics();
  const repository = new StaticRepository({
    observers: [metrics.observer],
    scheduler:
      scheduler === 'batching' ? batchingScheduler({ ...batching, observer: metrics.batches }) : directScheduler(),
  });
  for (const model of models) await repository.add(model);
  metrics.watch(repository);
  const servers: InferenceServer[] = [];
  const urls: string[] = [];
  for (const where of listen) {
    const server = new InferenceServer({
      repository,
      ...('socket' in where ? { socket: where.socket } : { port: 0 }),
      metrics: () => metrics.text(),
    });
    urls.push((await server.listen()).url);
    servers.push(server);
  }
  return {
    urls,
    metrics,
    repository,
    close: async () => {
      for (const server of servers) await server.close();
      await repository.close();
    },
  };
}

/** What the parent passes to a child server (as JSON, its one argument). */
export interface ChildConfig {
  readonly model: string;
  readonly scheduler: SchedulerKind;
  readonly batching: BatchingConfig;
}

export type ChildMessage =
  | { readonly type: 'ready'; readonly url: string; readonly rss: number }
  | { readonly type: 'rss'; readonly rss: number; readonly heapUsed: number };

export type ParentMessage = { readonly type: 'rss'; readonly gc: boolean } | { readonly type: 'stop' };

// ---- The parent side ----

/** A server child as the parent sees it. */
export interface ChildServer {
  readonly url: string;
  readonly startRss: number;
  /** Resident set size and V8 heap in use, bytes; after a full GC when `gc`. */
  memory(gc?: boolean): Promise<{ rss: number; heapUsed: number }>;
  stop(): Promise<void>;
}

/** Forks this file as a server child and resolves once it listens. */
export function startChild(config: ChildConfig): Promise<ChildServer> {
  const child: ChildProcess = fork(import.meta.filename, [JSON.stringify(config)], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    execArgv: [...process.execArgv, '--expose-gc'],
  });
  const next = (type: ChildMessage['type']) =>
    new Promise<ChildMessage>((resolve, reject) => {
      const onMessage = (message: ChildMessage) => {
        if (message.type !== type) return;
        child.off('exit', onExit);
        child.off('message', onMessage);
        resolve(message);
      };
      const onExit = (code: number | null) => reject(new Error(`the server child exited (${code ?? 'signal'})`));
      child.on('message', onMessage);
      child.once('exit', onExit);
    });
  return next('ready').then((ready) => ({
    url: ready.type === 'ready' ? ready.url : '',
    startRss: ready.rss,
    memory: (gc = false) => {
      const reply = next('rss');
      child.send({ type: 'rss', gc } satisfies ParentMessage);
      return reply.then((m) => ({ rss: m.rss, heapUsed: m.type === 'rss' ? m.heapUsed : NaN }));
    },
    stop: () =>
      new Promise<void>((resolve) => {
        child.once('exit', () => resolve());
        child.send({ type: 'stop' } satisfies ParentMessage);
      }),
  }));
}

// ---- The child side ----

async function child(config: ChildConfig): Promise<void> {
  setLogLevel('warn');
  const model = await loadModel(config.model, { warmup: 10 });
  const served = await serve([model], config.scheduler, config.batching, [{ tcp: true }]);
  const send = (message: ChildMessage) => process.send?.(message);
  process.on('message', (message: ParentMessage) => {
    if (message.type === 'rss') {
      if (message.gc) gc?.();
      const { rss, heapUsed } = process.memoryUsage();
      send({ type: 'rss', rss, heapUsed });
    } else
      void served
        .close()
        .then(() => model.release())
        .finally(() => process.exit(0));
  });
  process.on('disconnect', () => process.exit(0)); // the parent died: do not linger
  send({ type: 'ready', url: served.urls[0] ?? '', rss: process.memoryUsage().rss });
}

if (process.argv[1] === import.meta.filename && process.send !== undefined) {
  await child(JSON.parse(process.argv[2] ?? '{}') as ChildConfig);
}
