import type { Command } from 'commander';
import { register as registerDeploy } from './deploy.js';
import { register as registerGroups } from './groups.js';
import { register as registerInfer } from './infer.js';
import { register as registerServe } from './serve.js';
import { register as registerSimulate } from './simulate.js';
import { register as registerStatus } from './status.js';
import { register as registerThings } from './things.js';

/**
 * `outpost fleet …`: the control plane. `serve` runs the service; every other subcommand calls its HTTP API
 * (client.ts). One file per subcommand (groups.ts holds `groups` and `group create`; status.ts `status` and `cancel`).
 */
export function register(program: Command): void {
  const fleet = program
    .command('fleet')
    .description('the fleet control plane: registry, groups, persistent deployments');
  for (const add of [
    registerServe,
    registerThings,
    registerGroups,
    registerDeploy,
    registerStatus,
    registerInfer,
    registerSimulate,
  ])
    add(fleet);
}
