import type { Command } from 'commander';
import { execFile } from 'node:child_process';
import { existsSync, realpathSync } from 'node:fs';
import { chmod, chown, lstat, mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { dirname, join } from 'node:path';
import {
  parseAgentConfig,
  readAgentConfig,
  DEVICE_GROUPS,
  SERVICE_DEFAULTS,
  agentCommand,
  initialConfig,
  renderUnit,
  thingNameOf,
  validateSpec,
  type ServiceSpec,
} from '../../device-agent/index.js';
import { OutpostError, fromFsError, messageOf } from '../../runtime/errors.js';
import { print, printJson } from '../output.js';

interface InstallServiceOptions {
  name: string;
  user: string;
  configDir: string;
  dataDir: string;
  unitDir: string;
  thing?: string;
  exec?: string;
  root?: string;
  start: boolean;
  dryRun?: boolean;
  force?: boolean;
  json?: boolean;
}

type StepStatus = 'done' | 'planned' | 'skipped' | 'unchanged';

interface Step {
  readonly action: string;
  /** The command this step runs, for the record and for --dry-run. */
  readonly command?: readonly string[];
  /** Why the step does nothing (already so, or not possible under --root). */
  readonly skip?: { status: 'skipped' | 'unchanged'; why: string };
  readonly run?: () => Promise<void>;
}

function runCommand(command: readonly string[]): Promise<void> {
  const [file = '', ...args] = command;
  return new Promise((resolve, reject) => {
    execFile(file, args, (error, _stdout, stderr) => {
      if (error === null) resolve();
      else
        reject(
          new OutpostError('SERVICE_INSTALL_FAILED', `${command.join(' ')} failed: ${stderr.trim() || error.message}`, {
            cause: error,
            details: { command },
          }),
        );
    });
  });
}

function succeeds(command: readonly string[]): Promise<boolean> {
  return runCommand(command).then(
    () => true,
    () => false,
  );
}

async function groupsOnHost(root: string): Promise<Set<string>> {
  try {
    const text = await readFile(join(root, 'etc', 'group'), 'utf8');
    return new Set(text.split('\n').map((line) => line.split(':')[0] ?? ''));
  } catch {
    return new Set();
  }
}

/** How this very CLI was started (node, its flags, the script): the service runs the same installation. */
function thisCommand(): string[] {
  const script = process.argv[1];
  if (script === undefined)
    throw new OutpostError('INVALID_ARGUMENT', 'cannot tell how outpost was started; pass --exec');
  return [process.execPath, ...process.execArgv, realpathSync(script)];
}

async function write(path: string, text: string, mode: number): Promise<void> {
  try {
    await mkdir(dirname(path), { recursive: true });
    await writeFile(path, text, { mode });
    await chmod(path, mode);
  } catch (error) {
    throw fromFsError(error, path, 'write');
  }
}

/** The steps, in order; nothing is changed until they run. */
async function plan(opts: InstallServiceOptions): Promise<{ spec: ServiceSpec; unit: string; steps: Step[] }> {
  const root = opts.root ?? '/';
  const live = opts.root === undefined;
  const at = (path: string) => join(root, path);
  const configFile = join(opts.configDir, SERVICE_DEFAULTS.configFileName);
  const hostGroups = await groupsOnHost(root);
  const spec: ServiceSpec = {
    name: opts.name,
    user: opts.user,
    configFile,
    dataDir: opts.dataDir,
    command: opts.exec === undefined ? thisCommand() : opts.exec.split(/\s+/).filter((a) => a !== ''),
    supplementaryGroups: DEVICE_GROUPS.filter((g) => hostGroups.has(g)),
  };
  validateSpec(spec);
  const unit = renderUnit(spec);
  const unitFile = join(opts.unitDir, `${opts.name}.service`);
  const steps: Step[] = [];

  const useradd = [
    'useradd',
    '--system',
    '--user-group',
    '--home-dir',
    opts.dataDir,
    '--no-create-home',
    '--shell',
    '/usr/sbin/nologin',
    opts.user,
  ];
  if (!live)
    steps.push({
      action: `create system user ${opts.user}`,
      command: useradd,
      skip: { status: 'skipped', why: '--root: create it on the device' },
    });
  else if (await succeeds(['id', '-u', opts.user]))
    steps.push({ action: `system user ${opts.user}`, skip: { status: 'unchanged', why: 'exists' } });
  else steps.push({ action: `create system user ${opts.user}`, command: useradd, run: () => runCommand(useradd) });

  if (existsSync(at(configFile)) && opts.force !== true) {
    // Kept, but checked: a service started on a config the agent rejects would only crash-loop.
    parseAgentConfig(await readAgentConfig(at(configFile)), configFile);
    steps.push({ action: `config ${configFile}`, skip: { status: 'unchanged', why: 'exists (--force replaces it)' } });
  } else {
    const thing = thingNameOf(opts.thing ?? hostname());
    const config = `${JSON.stringify(initialConfig(thing, opts.dataDir), null, 2)}\n`;
    steps.push({
      action: `write ${configFile} (thing "${thing}"; add broker, trustKeys)`,
      run: async () => {
        // Readable by the agent's group, writable by root only: the agent cannot rewrite its own trust settings.
        await write(at(configFile), config, 0o640);
        if (live) await chown(at(configFile), 0, await gid(opts.user));
      },
    });
  }

  steps.push({
    action: `create ${opts.dataDir} (owner ${opts.user}, mode 0750)`,
    run: async () => {
      await mkdir(at(join(opts.dataDir, 'cache')), { recursive: true });
      await chmod(at(opts.dataDir), 0o750);
      if (live) await runCommand(['chown', '-R', `${opts.user}:${opts.user}`, opts.dataDir]);
    },
  });
  steps.push({ action: `write ${unitFile}`, run: () => write(at(unitFile), unit, 0o644) });

  const unitName = `${opts.name}.service`;
  if (live) {
    const enable = ['systemctl', 'enable', ...(opts.start ? ['--now'] : []), unitName];
    steps.push({
      action: 'reload systemd',
      command: ['systemctl', 'daemon-reload'],
      run: () => runCommand(['systemctl', 'daemon-reload']),
    });
    steps.push({
      action: `enable ${opts.start ? 'and start ' : ''}${unitName}`,
      command: enable,
      run: () => runCommand(enable),
    });
  } else {
    // What `systemctl --root=<dir> enable` does: the [Install] section's WantedBy= as a symlink.
    const link = join('/etc/systemd/system/multi-user.target.wants', unitName);
    steps.push({
      action: `enable ${unitName} (link ${link})`,
      run: async () => {
        await mkdir(at(dirname(link)), { recursive: true });
        // lstat, not exists: the link points into the target root's /etc, which need not resolve from here.
        const linked = await lstat(at(link)).then(
          () => true,
          () => false,
        );
        if (!linked) await symlink(unitFile, at(link));
      },
    });
  }
  return { spec, unit, steps };
}

async function gid(user: string): Promise<number> {
  const group = (await readFile('/etc/group', 'utf8')).split('\n').find((line) => line.startsWith(`${user}:`));
  const id = Number(group?.split(':')[2]);
  if (!Number.isInteger(id)) throw new OutpostError('SERVICE_INSTALL_FAILED', `no group ${user} in /etc/group`);
  return id;
}

async function installService(opts: InstallServiceOptions): Promise<void> {
  if (opts.root === undefined && opts.dryRun !== true && process.getuid?.() !== 0) {
    throw new OutpostError(
      'SERVICE_INSTALL_FAILED',
      'install-service writes to /etc and runs useradd and systemctl: run it as root (sudo), or pass --dry-run',
    );
  }
  const { spec, unit, steps } = await plan(opts);
  const results: { action: string; status: StepStatus; command?: readonly string[]; note?: string }[] = [];
  for (const step of steps) {
    let status: StepStatus = 'planned';
    if (step.skip !== undefined) status = step.skip.status;
    else if (opts.dryRun !== true) {
      try {
        await step.run?.();
      } catch (error) {
        throw error instanceof OutpostError
          ? error
          : new OutpostError('SERVICE_INSTALL_FAILED', `${step.action}: ${messageOf(error)}`, { cause: error });
      }
      status = 'done';
    }
    results.push({
      action: step.action,
      status,
      ...(step.command ? { command: step.command } : {}),
      ...(step.skip ? { note: step.skip.why } : {}),
    });
  }
  const unitFile = join(opts.unitDir, `${opts.name}.service`);
  if (opts.json === true) {
    printJson({
      dryRun: opts.dryRun === true,
      root: opts.root ?? '/',
      unitFile,
      configFile: spec.configFile,
      dataDir: spec.dataDir,
      execStart: agentCommand(spec),
      steps: results,
      unit,
    });
    return;
  }
  const mark: Record<StepStatus, string> = {
    done: 'done     ',
    planned: 'would    ',
    skipped: 'skipped  ',
    unchanged: 'unchanged',
  };
  for (const r of results) {
    print(`${mark[r.status]}  ${r.action}${r.note === undefined ? '' : ` (${r.note})`}`);
    if (r.command !== undefined && r.status !== 'done' && r.status !== 'unchanged')
      print(`             $ ${r.command.join(' ')}`);
  }
  if (opts.dryRun === true) {
    print(`\n# ${unitFile}`);
    print(unit);
  } else if (opts.root === undefined) {
    print(`\nlogs: journalctl -u ${opts.name} -f    status: outpost agent status --data-dir ${opts.dataDir}`);
  }
}

export function register(program: Command): void {
  const d = SERVICE_DEFAULTS;
  program
    .command('install-service')
    .description('install the device agent as a systemd service (Raspberry Pi OS, JetPack, any systemd Linux)')
    .option('--name <name>', 'service name', d.name)
    .option('--user <user>', 'system user the agent runs as (created if missing)', d.user)
    .option('--config-dir <dir>', 'where agent.json lives', d.configDir)
    .option('--data-dir <dir>', "the agent's state: models, deployments, spool", d.dataDir)
    .option('--unit-dir <dir>', 'where the unit file goes', d.unitDir)
    .option('--thing <name>', 'thing name for a new config (default: the host name)')
    .option('--exec <command>', 'program that runs outpost, split at spaces (default: this node and CLI)')
    .option('--root <dir>', 'install into an image or directory tree instead of this system (no useradd/systemctl)')
    .option('--no-start', 'enable the service but do not start it now')
    .option('--dry-run', 'print what would be done and the unit file; change nothing')
    .option('--force', 'replace an existing agent.json')
    .option('--json', 'print JSON')
    .action(async (opts: InstallServiceOptions) => installService(opts));
}
