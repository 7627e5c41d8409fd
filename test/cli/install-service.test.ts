import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, readlink, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseAgentConfig } from '../../device-agent/config.js';
import { quoteArg, renderUnit, thingNameOf, type ServiceSpec } from '../../device-agent/service-unit.js';
import { startAgent } from '../helpers/agent.js';
import { runCli } from '../helpers/cli.js';
import { tmpDir } from '../helpers/tmp.js';

/** systemd's own unit checker, where systemd is installed: it parses the unit as PID 1 would. */
const SYSTEMD_ANALYZE = spawnSync('sh', ['-c', 'command -v systemd-analyze']).status === 0;

const EXEC = `${process.execPath} /opt/outpost/dist/cli/main.js`;

interface InstallJson {
  dryRun: boolean;
  unitFile: string;
  configFile: string;
  execStart: string[];
  steps: { action: string; status: string; command?: string[] }[];
  unit: string;
}

function install(root: string, ...extra: string[]) {
  return runCli(['install-service', '--root', root, '--thing', 'pi-kitchen', '--exec', EXEC, '--json', ...extra]);
}

describe('the systemd unit', () => {
  const spec: ServiceSpec = {
    name: 'outpost',
    user: 'outpost',
    configFile: '/etc/outpost/agent.json',
    dataDir: '/var/lib/outpost',
    command: ['/usr/bin/node', '/home/pi/my outpost/dist/cli/main.js'],
    supplementaryGroups: ['video'],
  };

  it('quotes arguments as systemd reads them: spaces, quotes, % specifiers and $ variables', () => {
    expect(quoteArg('/usr/bin/node')).toBe('/usr/bin/node');
    expect(quoteArg('/home/pi/my outpost')).toBe('"/home/pi/my outpost"');
    expect(quoteArg('100%')).toBe('100%%');
    expect(quoteArg('$HOME')).toBe('$$HOME');
    expect(quoteArg('say "hi"\\')).toBe('"say \\"hi\\"\\\\"');
    expect(quoteArg('')).toBe('""');
  });

  it('runs the agent with its config and state, restarts it, logs to the journal, and may write only its state', () => {
    const unit = renderUnit(spec);
    const lines = unit.split('\n');
    expect(lines).toContain(
      'ExecStart=/usr/bin/node "/home/pi/my outpost/dist/cli/main.js" agent --config /etc/outpost/agent.json --data-dir /var/lib/outpost',
    );
    for (const line of [
      'User=outpost',
      'SupplementaryGroups=video',
      'Restart=always',
      'StandardError=journal',
      'ProtectSystem=strict',
      'ReadWritePaths=/var/lib/outpost',
      'Environment=OUTPOST_CACHE_DIR=/var/lib/outpost/cache',
      'WantedBy=multi-user.target',
    ])
      expect(lines).toContain(line);
    // V8 needs writable+executable memory for its JIT and WebAssembly.
    expect(unit).not.toMatch(/^MemoryDenyWriteExecute=yes/m);
  });

  it('refuses paths systemd cannot hold and names that are not unit or user names', () => {
    expect(() => renderUnit({ ...spec, dataDir: '/var/lib/my outpost' })).toThrow(/data dir "\/var\/lib\/my outpost"/);
    expect(() => renderUnit({ ...spec, configFile: 'etc/agent.json' })).toThrow(/expected an absolute path/);
    expect(() => renderUnit({ ...spec, user: 'Root!' })).toThrow(/user "Root!"/);
    expect(() => renderUnit({ ...spec, name: '../x' })).toThrow(/service name/);
  });

  it('makes thing names from host names', () => {
    expect(thingNameOf('raspberrypi.local')).toBe('raspberrypi-local');
    expect(thingNameOf('')).toBe('outpost-device');
  });
});

describe('outpost install-service', () => {
  it('--dry-run prints the plan and the unit and changes nothing', async () => {
    const root = await tmpDir();
    const result = await install(root, '--dry-run');
    expect(result.code, result.stderr).toBe(0);
    const out = JSON.parse(result.stdout) as InstallJson;
    expect(out.dryRun).toBe(true);
    expect(out.steps.map((s) => s.status)).toEqual(['skipped', 'planned', 'planned', 'planned', 'planned']);
    expect(out.unit).toContain('[Service]');
    expect(await readdir(root)).toEqual([]);

    const human = await runCli(['install-service', '--dry-run', '--exec', EXEC, '--config-dir', '/srv/outpost/etc']);
    expect(human.code, human.stderr).toBe(0);
    expect(human.stdout).toMatch(/^would\s+write \/srv\/outpost\/etc\/agent\.json/m);
    expect(human.stdout).toMatch(/\$ systemctl enable --now outpost\.service/);
    expect(human.stdout).toContain('# /etc/systemd/system/outpost.service');
  });

  it('installs into a root: config, state directory, unit and the enable link, each with its mode', async () => {
    const root = await tmpDir();
    const result = await install(root, '--data-dir', '/data/outpost', '--name', 'outpost-edge');
    expect(result.code, result.stderr).toBe(0);
    const out = JSON.parse(result.stdout) as InstallJson;
    expect(out.execStart).toEqual([
      process.execPath,
      '/opt/outpost/dist/cli/main.js',
      'agent',
      '--config',
      '/etc/outpost/agent.json',
      '--data-dir',
      '/data/outpost',
    ]);

    const config = JSON.parse(await readFile(join(root, 'etc/outpost/agent.json'), 'utf8')) as unknown;
    expect(parseAgentConfig(config)).toMatchObject({ thing: 'pi-kitchen', dataDir: '/data/outpost' });
    expect((await stat(join(root, 'etc/outpost/agent.json'))).mode & 0o777).toBe(0o640);
    expect((await stat(join(root, 'data/outpost'))).mode & 0o777).toBe(0o750);
    expect(existsSync(join(root, 'data/outpost/cache'))).toBe(true);
    const unitPath = join(root, 'etc/systemd/system/outpost-edge.service');
    expect(await readFile(unitPath, 'utf8')).toBe(out.unit);
    expect(await readlink(join(root, 'etc/systemd/system/multi-user.target.wants/outpost-edge.service'))).toBe(
      '/etc/systemd/system/outpost-edge.service',
    );
    if (SYSTEMD_ANALYZE) {
      // The real parser: it also checks that ExecStart's program exists and is executable.
      const verify = spawnSync('systemd-analyze', ['verify', unitPath], { encoding: 'utf8' });
      expect(verify.stderr).toBe('');
      expect(verify.status).toBe(0);
    }
  });

  it('keeps an existing config on re-install (and checks it), replacing it only with --force', async () => {
    const root = await tmpDir();
    expect((await install(root)).code).toBe(0);
    const configPath = join(root, 'etc/outpost/agent.json');
    const edited = { thing: 'pi-kitchen', dataDir: '/var/lib/outpost', broker: { url: 'mqtts://broker.local:8883' } };
    await writeFile(configPath, JSON.stringify(edited));

    const again = JSON.parse((await install(root)).stdout) as InstallJson;
    expect(again.steps.find((s) => s.action.startsWith('config'))?.status).toBe('unchanged');
    expect(JSON.parse(await readFile(configPath, 'utf8'))).toEqual(edited);

    await writeFile(configPath, JSON.stringify({ thing: 'bad name!' }));
    const refused = await install(root);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/thing: an AWS IoT thing name .*\[CONFIG_INVALID\]/);

    expect((await install(root, '--force')).code).toBe(0);
    expect(JSON.parse(await readFile(configPath, 'utf8'))).toEqual({
      thing: 'pi-kitchen',
      dataDir: '/var/lib/outpost',
    });
  });

  it('refuses a data directory with spaces, naming it', async () => {
    const result = await install(await tmpDir(), '--data-dir', '/var/lib/my outpost');
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(
      /data dir "\/var\/lib\/my outpost": expected an absolute path .*\[INVALID_ARGUMENT\]/,
    );
  });
});

describe('outpost agent status --check (the HEALTHCHECK)', () => {
  it('fails while no agent runs and passes once the agent started from the generated config serves', async () => {
    const root = await tmpDir();
    const dataDir = join(root, 'var/lib/outpost');
    expect((await install(root, '--data-dir', dataDir)).code).toBe(0);

    const down = await runCli(['agent', 'status', '--data-dir', dataDir, '--check']);
    expect(down.code).toBe(1);

    const agent = startAgent(['--config', join(root, 'etc/outpost/agent.json'), '--http-port', '0'], dataDir);
    try {
      await agent.http();
      const up = await runCli(['agent', 'status', '--data-dir', dataDir, '--check', '--json']);
      expect(up.code, up.stderr).toBe(0);
      expect(JSON.parse(up.stdout)).toMatchObject({ thing: 'pi-kitchen', running: true });
    } finally {
      await agent.stop();
    }
    expect((await runCli(['agent', 'status', '--data-dir', dataDir, '--check'])).code).toBe(1);
  });

  it('fails on a status file that stopped being rewritten, even when its pid is alive (reused after a reboot)', async () => {
    const dataDir = await tmpDir();
    // A live pid (this test's own) in a status file an agent would have rewritten within three 60 s intervals.
    const status = (updatedAt: Date) => ({
      thing: 'pi-kitchen',
      connected: false,
      pid: process.pid,
      startedAt: new Date(0).toISOString(),
      updatedAt: updatedAt.toISOString(),
      uptimeSeconds: 1,
      statusIntervalSeconds: 60,
      active: [],
      deployments: [],
      disk: { path: dataDir, freeBytes: 0, totalBytes: 0 },
      memory: { rssBytes: 0, systemFreeBytes: 0, systemTotalBytes: 0 },
      spool: { entries: 0, dropped: 0 },
    });
    const check = () => runCli(['agent', 'status', '--data-dir', dataDir, '--check']);
    await writeFile(join(dataDir, 'status.json'), JSON.stringify(status(new Date(Date.now() - 3600_000))));
    expect((await check()).code).toBe(1);
    await writeFile(join(dataDir, 'status.json'), JSON.stringify(status(new Date())));
    expect((await check()).code).toBe(0);
  });
});
