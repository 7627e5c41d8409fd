import type { Command } from 'commander';
import { collect } from '../../options.js';
import type { ThingView } from '../../../fleet/index.js';
import { OutpostError } from '../../../runtime/errors.js';
import { printJson } from '../../output.js';
import { type ClientOptions, FleetClient, addClientOptions } from './client.js';
import { driftRows, printDrift } from './drift.js';
import { printThing, printThings } from './print.js';

/** `outpost fleet things [--group g]` and `outpost fleet thing <name> [--attr k=v …]`. */
export function register(fleet: Command): void {
  addClientOptions(fleet.command('things').description('list registered things'))
    .option('--group <name>', 'only the members of this group')
    .option('--drift', "each monitored version's drift against its baseline, drifting devices first")
    .action(async (opts: ClientOptions & { group?: string; drift?: boolean }) => {
      const client = await FleetClient.from(opts);
      const query = opts.group === undefined ? '' : `?group=${encodeURIComponent(opts.group)}`;
      const { things } = await client.get<{ things: ThingView[] }>(`/v1/things${query}`);
      if (opts.drift === true) {
        const rows = driftRows(things);
        if (opts.json === true) printJson({ drift: rows });
        else printDrift(rows);
      } else if (opts.json === true) printJson({ things });
      else printThings(things);
    });
  addClientOptions(
    fleet.command('thing').description("one thing's record; --attr sets operator attributes (registering it if new)"),
  )
    .argument('<name>')
    .option('--attr <key=value>', 'set an attribute (key= removes it; repeatable)', collect)
    .action(async (name: string, opts: ClientOptions & { attr?: string[] }) => {
      const client = await FleetClient.from(opts);
      const path = `/v1/things/${encodeURIComponent(name)}`;
      if (opts.attr !== undefined) {
        const attributes: Record<string, string | null> = {};
        for (const pair of opts.attr) {
          const eq = pair.indexOf('=');
          if (eq <= 0) throw new OutpostError('INVALID_ARGUMENT', `--attr ${pair}: expected key=value`);
          const value = pair.slice(eq + 1);
          attributes[pair.slice(0, eq)] = value === '' ? null : value;
        }
        await client.put(`${path}/attributes`, { attributes });
      }
      const thing = await client.get<ThingView>(path);
      if (opts.json === true) printJson(thing);
      else printThing(thing);
    });
}
