import type { Command } from 'commander';
import { collect } from '../../options.js';
import type { GroupView } from '../../../fleet/index.js';
import { OutpostError } from '../../../runtime/errors.js';
import { print, printJson } from '../../output.js';
import { type ClientOptions, FleetClient, addClientOptions, splitList } from './client.js';
import { printGroups } from './print.js';

/** `outpost fleet groups` and `outpost fleet group create <name> (--thing a,b | --where k=v,…)`. */
export function register(fleet: Command): void {
  addClientOptions(fleet.command('groups').description('list thing groups')).action(async (opts: ClientOptions) => {
    const { groups } = await (await FleetClient.from(opts)).get<{ groups: GroupView[] }>('/v1/groups');
    if (opts.json === true) printJson({ groups });
    else printGroups(groups);
  });
  const group = fleet.command('group').description('manage thing groups');
  addClientOptions(group.command('create').description('a static group (--thing) or a dynamic one (--where)'))
    .argument('<name>')
    .option('--thing <names>', 'members, comma-separated (repeatable)', collect)
    .option('--where <query>', 'a query over target and attributes: arch=arm64,cpu=cortex-a72,attr.site=plant-3')
    .action(async (name: string, opts: ClientOptions & { thing?: string[]; where?: string }) => {
      if ((opts.thing === undefined) === (opts.where === undefined)) {
        throw new OutpostError('INVALID_ARGUMENT', 'give either --thing a,b (static) or --where k=v,… (dynamic)');
      }
      const body = opts.thing !== undefined ? { name, things: splitList(opts.thing) } : { name, where: opts.where };
      const created = await (await FleetClient.from(opts)).post<GroupView>('/v1/groups', body);
      if (opts.json === true) printJson(created);
      else
        print(
          `group ${created.groupName} created (${created.kind}: ${created.things?.join(',') ?? created.where ?? ''})`,
        );
    });
}
