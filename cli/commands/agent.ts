import type { Command } from 'commander';
import { join } from 'node:path';
import {
  Agent,
  parseAgentConfig,
  readAgentConfig,
  DeploymentStore,
  deploymentSummary,
  readStatus,
  type AgentStatus,
  ModelStore,
} from '../../device-agent/index.js';
import { logLevelFromEnv, logger, setLogLevel } from '../../runtime/log.js';
import { cliFlags } from '../context.js';
import { choice, collect } from '../options.js';
import { formatBytes, print, printJson, table } from '../output.js';

const log = logger('cli.agent');

export interface AgentFlags {
  config?: string;
  thing?: string;
  broker?: string;
  transport?: 'mqtt' | 'aws-iot';
  ca?: string;
  cert?: string;
  key?: string;
  dataDir?: string;
  trustKey?: string[];
  allowUnsigned?: boolean;
  model?: string[];
  httpHost?: string;
  httpPort?: number;
  keepVersions?: number;
  statusInterval?: number;
  backend?: 'auto' | 'native' | 'wasm';
}

type Settings = Record<string, unknown>;

/**
 * Each flag and the config path it sets: every setting is a flag too. A flag given wins over the file at its path
 * and leaves the file's other settings (siblings included: `--http-port` keeps the file's `http.socket`) in place.
 */
export const FLAG_PATHS: readonly (readonly [Exclude<keyof AgentFlags, 'config'>, readonly string[]])[] = Object.freeze(
  [
    ['thing', ['thing']],
    ['broker', ['broker', 'url']],
    ['transport', ['broker', 'transport']],
    ['ca', ['broker', 'ca']],
    ['cert', ['broker', 'cert']],
    ['key', ['broker', 'key']],
    ['dataDir', ['dataDir']],
    ['trustKey', ['trustKeys']],
    ['allowUnsigned', ['allowUnsigned']],
    ['model', ['models']],
    ['httpHost', ['http', 'host']],
    ['httpPort', ['http', 'port']],
    ['keepVersions', ['keepVersions']],
    ['statusInterval', ['statusIntervalSeconds']],
    ['backend', ['backend']],
  ],
);

function isSettings(value: unknown): value is Settings {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** `base` with `value` at `path`, copying each object on the way (the file's own objects are not changed). */
function withPath(base: Settings, path: readonly string[], value: unknown): Settings {
  const [head, ...rest] = path;
  if (head === undefined) return base;
  const inner = base[head];
  return { ...base, [head]: rest.length === 0 ? value : withPath(isSettings(inner) ? inner : {}, rest, value) };
}

/** The file's settings with the given flags laid over them, validated by the config schema. */
export async function agentConfig(flags: AgentFlags) {
  let settings: Settings = flags.config === undefined ? {} : { ...(await readAgentConfig(flags.config)) };
  for (const [flag, path] of FLAG_PATHS) {
    const value = flags[flag];
    if (value !== undefined) settings = withPath(settings, path, value);
  }
  return parseAgentConfig(settings, flags.config ?? 'agent flags');
}

/** Stale beyond this many status intervals: the pid in the file may since belong to another process. */
const STALE_INTERVALS = 3;

/** The running agent rewrites status.json at least every status interval (files without one predate the field). */
function fresh(status: AgentStatus): boolean {
  if (status.statusIntervalSeconds === undefined) return true;
  const age = Date.now() - Date.parse(status.updatedAt);
  return age <= STALE_INTERVALS * status.statusIntervalSeconds * 1000;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * The local status, read from the data directory alone: deployments from their state files (current even if the
 * agent died mid-step), active models from the store, connectivity from the running agent's status file.
 */
async function localStatus(dataDir: string): Promise<AgentStatus & { running: boolean }> {
  const written = await readStatus(dataDir);
  const running = written !== undefined && alive(written.pid) && fresh(written);
  const deployments = (await new DeploymentStore(join(dataDir, 'deployments')).all()).map(deploymentSummary);
  let active = written?.active ?? [];
  if (!running) {
    const store = new ModelStore(join(dataDir, 'store'));
    active = [];
    for (const model of await store.models()) {
      const version = await store.current(model);
      const selection = version === undefined ? undefined : await store.selection(model, version);
      if (version !== undefined && selection !== undefined)
        active.push({ model, version, variant: selection.variant, backend: selection.backend });
    }
  }
  const base: Omit<AgentStatus, 'active' | 'deployments'> = written ?? {
    thing: '?',
    connected: false,
    pid: 0,
    startedAt: '',
    updatedAt: '',
    uptimeSeconds: 0,
    disk: { path: dataDir, freeBytes: 0, totalBytes: 0 },
    memory: { rssBytes: 0, systemFreeBytes: 0, systemTotalBytes: 0 },
    spool: { entries: 0, dropped: 0 },
    shadows: [],
    guardrails: [],
    health: [],
  };
  // A dead agent serves nothing: its last endpoint is not reported as one.
  const { http, ...rest } = base;
  return {
    ...rest,
    ...(running && http !== undefined ? { http } : {}),
    connected: running && base.connected,
    running,
    active,
    deployments,
  };
}

/** The first line: whether the agent runs, and only then where it serves (a dead agent's endpoint is not served). */
function headline(s: AgentStatus & { running: boolean }): string {
  if (!s.running) {
    const seen = s.updatedAt === '' ? '' : ` (last status ${s.updatedAt}, pid ${s.pid})`;
    return `thing ${s.thing}  agent not running${seen}`;
  }
  return `thing ${s.thing}  ${s.connected ? 'connected' : 'running, offline'}${s.http === undefined ? '' : `  serving ${s.http}`}`;
}

function printStatus(s: AgentStatus & { running: boolean }): void {
  print(headline(s));
  print('');
  print(
    s.active.length === 0
      ? 'no active models'
      : table(
          ['model', 'version', 'variant', 'backend', 'role', 'traffic'],
          s.active.map((a) => [
            a.model,
            a.version,
            a.variant,
            a.backend,
            a.role ?? 'production',
            a.trafficPercent === undefined ? '' : `${a.trafficPercent.toFixed(0)}%`,
          ]),
        ),
  );
  for (const sh of s.shadows) {
    const pct = (x: number | undefined) => (x === undefined ? '?' : `${(x * 100).toFixed(1)}%`);
    print(
      `shadow ${sh.model}@${sh.version} (${sh.percent}% mirrored): ${sh.compared} compared, agreement ${pct(sh.agreement)}${sh.exactMatch === undefined ? '' : `, exact match ${pct(sh.exactMatch)}`}, cosine ${sh.meanCosine?.toFixed(4) ?? '?'}, max |Δ| ${sh.maxAbsDiff.toPrecision(3)}, p50 ${sh.productionP50Ms?.toFixed(2) ?? '?'} → ${sh.shadowP50Ms?.toFixed(2) ?? '?'} ms, ${sh.shadowErrors} errors`,
    );
  }
  for (const g of s.guardrails) {
    print(
      `baking ${g.model}@${g.version}: ${g.elapsedSeconds.toFixed(0)}/${g.windowSeconds} s watched, ${g.requests} calls, ${g.errors} errors (${(g.errorRate * 100).toFixed(1)}%), p99 ${g.p99Ms?.toFixed(2) ?? '?'} ms`,
    );
  }
  for (const d of s.drift ?? []) {
    const worst = d.scores[0];
    const figure =
      worst === undefined
        ? 'window filling'
        : `worst ${worst.feature} ${worst.stat} ${worst.value} (threshold ${worst.threshold})`;
    print(`drift ${d.model}@${d.version}: ${d.drifting ? 'DRIFTING' : 'ok'}, ${d.samples} calls in window, ${figure}`);
  }
  if (s.capture !== undefined) {
    const c = s.capture;
    const dropped = (c.droppedQueueFull ?? 0) + (c.droppedTooLarge ?? 0) + (c.droppedByCap ?? 0) + (c.lost ?? 0);
    print(
      `capture: ${c.written ?? 0} of ${c.sampled ?? 0} sampled calls written, ${dropped} dropped, ${formatBytes(c.totalBytes ?? 0)} on disk`,
    );
  }
  if (s.deployments.length > 0) {
    print('');
    print(
      table(
        ['job', 'model', 'version', 'state', 'received', 'fetched', 'reason'],
        s.deployments.map((d) => [
          d.jobId,
          d.model,
          d.version,
          d.state,
          `${formatBytes(d.bytesReceived)} / ${formatBytes(d.bytesTotal)}`,
          formatBytes(d.bytesFetched),
          d.reason ?? '',
        ]),
      ),
    );
  }
  if (s.running)
    print(
      `\ndisk ${formatBytes(s.disk.freeBytes)} free  rss ${formatBytes(s.memory.rssBytes)}  spool ${s.spool.entries} (dropped ${s.spool.dropped}, refused ${s.spool.refused ?? 0})`,
    );
}

export function register(program: Command): void {
  const agent = program
    .command('agent')
    .description(
      'run the device agent: serve installed models, take deployments over MQTT (AWS IoT Jobs + file delivery)',
    )
    .option('-c, --config <file>', 'agent config (JSON); flags override it')
    .option('--thing <name>', 'thing name (MQTT client id)')
    .option('--broker <url>', 'mqtt://, mqtts://, ws:// or wss:// broker URL')
    .option(
      '--transport <kind>',
      'mqtt (any broker) or aws-iot (AWS IoT Core, MQTT 5)',
      choice(['mqtt', 'aws-iot'] as const),
    )
    .option('--ca <pem>', 'broker CA certificate')
    .option('--cert <pem>', 'device certificate (mTLS)')
    .option('--key <pem>', 'device private key (mTLS)')
    .option('--data-dir <dir>', 'state directory (default /var/lib/outpost)')
    .option('--trust-key <pem>', 'public key whose artifact signatures are trusted (repeatable)', collect)
    .option('--allow-unsigned', 'accept unsigned artifacts when no --trust-key is given')
    .option('--model <name>', 'a model this device may run (repeatable; default any)', collect)
    .option('--http-host <host>', 'local inference endpoint host (default 127.0.0.1)')
    .option('--http-port <port>', 'local inference endpoint port (default 8080; 0 = any free)', Number)
    .option('--keep-versions <n>', 'installed versions kept per model', Number)
    .option('--status-interval <seconds>', 'seconds between status messages', Number)
    .option('--backend <name>', 'auto, native or wasm', choice(['auto', 'native', 'wasm'] as const))
    .action(async (flags: AgentFlags) => {
      // A daemon's log is its output: `info` (its steps) unless --verbose, --quiet or OUTPOST_LOG_LEVEL say otherwise.
      const { verbose, quiet } = cliFlags();
      if (!verbose && !quiet) setLogLevel(logLevelFromEnv() ?? 'info');
      const config = await agentConfig(flags);
      const instance = new Agent({ config });
      const { http } = await instance.start();
      log.info({ thing: config.thing, http, broker: config.broker?.url ?? 'none (offline)' }, 'agent started');
      await new Promise<void>((resolve) => {
        const stop = () => resolve();
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      });
      await instance.stop();
    });
  agent
    .command('status')
    .description("the agent's local status: connection, active models, deployments")
    .option('--data-dir <dir>', 'state directory (default /var/lib/outpost)')
    .option('--json', 'print JSON')
    .option(
      '--check',
      'exit 1 unless the agent is running: its pid alive and its status file rewritten within 3 status intervals',
    )
    .action(async (_opts: unknown, command: Command) => {
      // `agent` has its own --data-dir, which commander may bind instead: read both.
      const opts = command.optsWithGlobals<{ dataDir?: string; json?: boolean; check?: boolean }>();
      const status = await localStatus(opts.dataDir ?? '/var/lib/outpost');
      if (opts.json === true) printJson(status);
      else printStatus(status);
      if (opts.check === true && !status.running) process.exitCode = 1;
    });
}
