import { createRequire } from 'node:module';
import type * as Prom from 'prom-client';

/**
 * The four prom-client classes the server uses, each from its own module. prom-client's index also loads the push
 * gateway (http, https), cluster aggregation and the default-metric collectors (with @opentelemetry/api), none of
 * which Outpost uses: ~40 ms of CPU and ~10 MB of RSS at every agent start (docs/agent-footprint.md). The classes
 * are the very ones the index re-exports, so types and `instanceof` are prom-client's.
 */
const load = createRequire(import.meta.url);

export const Counter = load('prom-client/lib/counter') as typeof Prom.Counter;
export const Gauge = load('prom-client/lib/gauge') as typeof Prom.Gauge;
export const Histogram = load('prom-client/lib/histogram') as typeof Prom.Histogram;
export const Registry = load('prom-client/lib/registry') as typeof Prom.Registry;

export type Counter<T extends string = string> = Prom.Counter<T>;
export type Gauge<T extends string = string> = Prom.Gauge<T>;
export type Histogram<T extends string = string> = Prom.Histogram<T>;
export type Registry = Prom.Registry;
