import { Command } from 'commander';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FLAG_PATHS, agentConfig, register } from '../../cli/commands/agent.js';
import { tmpDir } from '../helpers/tmp.js';

describe('outpost agent: flags over the config file (one table of flag → config path)', () => {
  it('has a row for every flag of `outpost agent` but --config', () => {
    const program = new Command();
    register(program);
    const agent = program.commands.find((c) => c.name() === 'agent');
    const flags = (agent?.options ?? []).map((o) => o.attributeName()).filter((name) => name !== 'config');
    expect(FLAG_PATHS.map(([flag]) => flag).sort()).toEqual(flags.sort());
  });

  it('replaces the file at each given path and keeps the rest, nested siblings included', async () => {
    const config = join(await tmpDir(), 'agent.json');
    const file = {
      thing: 'from-file',
      broker: { url: 'mqtt://file:1883', ca: 'file-ca.pem' },
      http: { port: 9000, tokenFile: 'token' },
      keepVersions: 2,
    };
    await writeFile(config, JSON.stringify(file));
    const parsed = await agentConfig({
      config,
      thing: 'from-flags',
      broker: 'mqtts://flag:8883',
      httpHost: '0.0.0.0',
      model: ['a', 'b'],
      statusInterval: 5,
    });
    expect(parsed).toMatchObject({
      thing: 'from-flags',
      broker: { url: 'mqtts://flag:8883', ca: 'file-ca.pem', transport: 'mqtt' },
      http: { host: '0.0.0.0', port: 9000, tokenFile: 'token' },
      models: ['a', 'b'],
      keepVersions: 2,
      statusIntervalSeconds: 5,
    });
  });

  it('without a file, builds the config from flags alone; a bad value is CONFIG_INVALID naming the flags', async () => {
    await expect(agentConfig({ thing: 't1', httpPort: 0 })).resolves.toMatchObject({ thing: 't1', http: { port: 0 } });
    await expect(agentConfig({ thing: 'bad thing' })).rejects.toMatchObject({
      code: 'CONFIG_INVALID',
      message: expect.stringContaining('agent flags') as unknown,
    });
  });
});
