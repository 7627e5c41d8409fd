import { OutpostError } from '../runtime/errors.js';
import { parseAgentConfig, type AgentConfigInput } from './config.js';

/**
 * The agent as a systemd service on a Raspberry Pi or Jetson: the unit file and the first config, as text. Pure:
 * `outpost install-service` (cli/commands/install-service.ts) decides where they go and runs the commands.
 * References are to systemd.exec(5), systemd.service(5) and systemd.unit(5).
 */

export const SERVICE_DEFAULTS = Object.freeze({
  name: 'outpost',
  user: 'outpost',
  configDir: '/etc/outpost',
  dataDir: '/var/lib/outpost',
  unitDir: '/etc/systemd/system',
  restartSec: 5, // seconds from a crash to the restart
  startLimitBurst: 10, // starts within startLimitIntervalSec before systemd stops trying (then: systemctl status)
  startLimitIntervalSec: 600, // seconds
  stopTimeoutSec: 30, // seconds for the agent to finish its current step after SIGTERM; deployments resume after
  configFileName: 'agent.json',
});

/**
 * Groups the agent joins when the host has them: `video` opens the Jetson's GPU (/dev/nvhost-*, /dev/nvmap) and the
 * Pi's camera and codec devices; `render` the DRM render nodes.
 */
export const DEVICE_GROUPS: readonly string[] = Object.freeze(['video', 'render']);

export interface ServiceSpec {
  readonly name: string;
  readonly user: string;
  readonly configFile: string;
  readonly dataDir: string;
  /** The program and its arguments, before `agent --config … --data-dir …`. */
  readonly command: readonly string[];
  readonly supplementaryGroups: readonly string[];
}

/** systemd.unit(5) names: letters, digits and `:-_.\`; we keep to a plain word. */
const UNIT_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.:-]{0,200}$/;
const USER_NAME = /^[a-z_][a-z0-9_-]{0,31}$/;

/**
 * One argument of a command line as systemd.service(5), "Command lines", reads it: `%` starts a specifier and `$`
 * an environment variable, so both are doubled; anything with whitespace, quotes or backslashes is double-quoted
 * with C-style escapes.
 */
export function quoteArg(arg: string): string {
  const literal = arg.replaceAll('%', '%%').replaceAll('$', '$$$$');
  if (literal !== '' && /^[A-Za-z0-9_@%+=:,./$-]+$/.test(literal)) return literal;
  return `"${literal.replaceAll('\\', '\\\\').replaceAll('"', '\\"')}"`;
}

/** Paths go into space-separated settings (ReadWritePaths=), where systemd offers no quoting: refuse whitespace. */
function checkPath(what: string, path: string): void {
  if (!path.startsWith('/') || /[\s"'\\]/.test(path)) {
    throw new OutpostError(
      'INVALID_ARGUMENT',
      `${what} "${path}": expected an absolute path without spaces or quotes`,
      {
        details: { [what]: path },
      },
    );
  }
}

export function validateSpec(spec: ServiceSpec): void {
  if (!UNIT_NAME.test(spec.name))
    throw new OutpostError('INVALID_ARGUMENT', `service name "${spec.name}": expected letters, digits, _ . : -`);
  if (!USER_NAME.test(spec.user))
    throw new OutpostError('INVALID_ARGUMENT', `user "${spec.user}": expected a system user name ([a-z_][a-z0-9_-]*)`);
  checkPath('config file', spec.configFile);
  checkPath('data dir', spec.dataDir);
  if (spec.command.length === 0) throw new OutpostError('INVALID_ARGUMENT', 'the service needs a command to run');
}

/** The ExecStart= arguments: the given command, then the agent with its config and state. */
export function agentCommand(spec: ServiceSpec): string[] {
  return [...spec.command, 'agent', '--config', spec.configFile, '--data-dir', spec.dataDir];
}

export function renderUnit(spec: ServiceSpec): string {
  validateSpec(spec);
  const d = SERVICE_DEFAULTS;
  const lines = [
    '# Written by `outpost install-service`, which rewrites it on every run: put local changes in',
    `# \`systemctl edit ${spec.name}\` (a drop-in) instead of here.`,
    '[Unit]',
    'Description=Outpost device agent (edge inference, deployments over MQTT)',
    // The agent serves offline and connects when it can, but a first connection attempt at boot goes better with a
    // network that is up (systemd.special(7), network-online.target).
    'Wants=network-online.target',
    'After=network-online.target time-sync.target',
    `StartLimitIntervalSec=${d.startLimitIntervalSec}`,
    `StartLimitBurst=${d.startLimitBurst}`,
    '',
    '[Service]',
    'Type=simple',
    `User=${spec.user}`,
    `Group=${spec.user}`,
    ...(spec.supplementaryGroups.length > 0 ? [`SupplementaryGroups=${spec.supplementaryGroups.join(' ')}`] : []),
    `ExecStart=${agentCommand(spec).map(quoteArg).join(' ')}`,
    // The native backend's crash probe caches its verdict here: the one tree the service may write.
    `Environment=${quoteArg(`OUTPOST_CACHE_DIR=${spec.dataDir}/cache`)}`,
    'Environment=NODE_ENV=production',
    'Restart=always',
    `RestartSec=${d.restartSec}`,
    `TimeoutStopSec=${d.stopTimeoutSec}`,
    'KillSignal=SIGTERM',
    // Logs: pino's JSON lines on stderr go to the journal (journalctl -u outpost -o cat | npx pino-pretty).
    'StandardOutput=journal',
    'StandardError=journal',
    `SyslogIdentifier=${spec.name}`,
    // Hardening (systemd.exec(5), "Sandboxing"). Not MemoryDenyWriteExecute: V8's JIT and WebAssembly need W+X
    // pages. Not PrivateDevices: the Jetson's GPU and the Pi's camera are devices.
    'NoNewPrivileges=yes',
    'ProtectSystem=strict',
    // read-only, not yes: a bundle unpacked in /home/pi must stay runnable.
    'ProtectHome=read-only',
    `ReadWritePaths=${spec.dataDir}`,
    'PrivateTmp=yes',
    'ProtectKernelTunables=yes',
    'ProtectKernelModules=yes',
    'ProtectControlGroups=yes',
    'RestrictSUIDSGID=yes',
    'LockPersonality=yes',
    'UMask=0027',
    // A deliberate crash in the probe's child must not leave core files in the data directory.
    'LimitCORE=0',
    '',
    '[Install]',
    'WantedBy=multi-user.target',
    '',
  ];
  return lines.join('\n');
}

/**
 * The config written on first install: enough for the agent to start and serve offline. Broker, certificates and
 * trusted keys are the operator's to add (docs/install-raspberry-pi.md); the agent refuses unsigned artifacts until
 * `trustKeys` or `allowUnsigned` says otherwise. Validated by the agent's own schema before it is written.
 */
export function initialConfig(thing: string, dataDir: string): AgentConfigInput {
  const config: AgentConfigInput = { thing, dataDir };
  parseAgentConfig(config, 'generated agent config');
  return config;
}

/** A thing name from a host name: AWS IoT's alphabet ([a-zA-Z0-9:_-]), at most 128 characters. */
export function thingNameOf(hostname: string): string {
  const name = hostname.replace(/[^a-zA-Z0-9:_-]/g, '-').slice(0, 128);
  return name === '' ? 'outpost-device' : name;
}
